//! Subcommand arguments built only when their subcommand is chosen.
//!
//! clap's derive builds the whole command tree before it parses anything: every argument of
//! every subcommand, with its help text, allocated at each start. `tsem run` is started once per
//! supervised workload (and by the container runtime for every container), so that start-up is
//! paid per workload: about a quarter of a millisecond here, and the heap pages it touches.
//! [`Lazy`] hands a subcommand's arguments to clap's [`Command::defer`], which adds them only
//! when that subcommand is parsed or its help shown; `tsem --help` still lists every
//! subcommand with its summary, which the enum's doc comments give.

use clap::{ArgMatches, Args, Command, Error, FromArgMatches, Subcommand};

/// `T`'s arguments or subcommands, added to its command only when that command is used.
#[derive(Debug, Clone)]
pub struct Lazy<T>(pub T);

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, Error> {
        T::from_arg_matches(matches).map(Self)
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, Error> {
        T::from_arg_matches_mut(matches).map(Self)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), Error> {
        self.0.update_from_arg_matches(matches)
    }

    fn update_from_arg_matches_mut(&mut self, matches: &mut ArgMatches) -> Result<(), Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn augment_args(cmd: Command) -> Command {
        cmd.defer(|c| keeping_summary(c, T::augment_args))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        cmd.defer(|c| keeping_summary(c, T::augment_args_for_update))
    }
}

impl<T: Subcommand> Subcommand for Lazy<T> {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.defer(|c| keeping_summary(c, T::augment_subcommands))
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        cmd.defer(|c| keeping_summary(c, T::augment_subcommands_for_update))
    }

    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

/// Run `augment` on `cmd`, keeping the summary the subcommand's variant gave it. Built eagerly,
/// the variant's doc comment is applied after the inner type's and wins; deferred, the inner
/// type's would come last and replace it.
fn keeping_summary(cmd: Command, augment: fn(Command) -> Command) -> Command {
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let cmd = augment(cmd);
    match (about, long_about) {
        (Some(about), Some(long)) => cmd.about(about).long_about(long),
        (Some(about), None) => cmd.about(about).long_about(None::<&str>),
        (None, _) => cmd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Top {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Cmd {
        /// Eager.
        Plain(Opts),
        /// Deferred.
        Deferred(Lazy<Opts>),
        /// Deferred subcommands.
        #[command(subcommand)]
        Group(Lazy<Inner>),
    }

    /// The options' own summary, which the variant's replaces.
    #[derive(clap::Args, Debug)]
    struct Opts {
        /// A count.
        #[arg(long, default_value_t = 3)]
        n: usize,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Inner {
        /// One.
        One(Opts),
    }

    /// Arguments behind [`Lazy`] parse, default and refuse as the eager ones do, and the
    /// top-level command does not hold them until its subcommand is built.
    #[test]
    fn deferred_arguments_parse_as_eager_ones_and_are_not_built_up_front() {
        let n = |args: &[&str]| match Top::try_parse_from(args).map(|t| t.cmd) {
            Ok(Cmd::Plain(o))
            | Ok(Cmd::Deferred(Lazy(o)))
            | Ok(Cmd::Group(Lazy(Inner::One(o)))) => Ok(o.n),
            Err(e) => Err(e.kind()),
        };
        for sub in [
            &["t", "plain"][..],
            &["t", "deferred"],
            &["t", "group", "one"],
        ] {
            assert_eq!(n(sub), Ok(3), "{sub:?}");
            let with: Vec<&str> = sub.iter().copied().chain(["--n", "7"]).collect();
            assert_eq!(n(&with), Ok(7), "{with:?}");
            let bad: Vec<&str> = sub.iter().copied().chain(["--bogus"]).collect();
            assert_eq!(n(&bad), Err(clap::error::ErrorKind::UnknownArgument));
        }
        // The summary is the variant's, deferred or not, in the subcommand's own help too.
        for (sub, want) in [("plain", "Eager\n"), ("deferred", "Deferred\n")] {
            let help = match Top::try_parse_from(["t", sub, "--help"]) {
                Err(e) => e.to_string(),
                Ok(t) => panic!("{t:?}"),
            };
            assert!(help.starts_with(want), "{help}");
            assert!(!help.contains("own summary"), "{help}");
        }
        let top = Top::command();
        let args = |name: &str| {
            top.find_subcommand(name)
                .map(|c| c.get_arguments().count())
                .unwrap_or(usize::MAX)
        };
        assert!(args("plain") >= 1);
        assert_eq!(args("deferred"), 0);
        assert_eq!(
            top.find_subcommand("group")
                .map(|c| c.get_subcommands().count()),
            Some(0)
        );
    }
}
