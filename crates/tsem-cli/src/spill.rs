//! Descriptions of new forensic points, kept out of memory.
//!
//! `tsem replay` keeps only what the state needs per point (coefficient and count word, ~50 bytes
//! at a million points). What it prints beyond the state is the forensic points' descriptions, and
//! a stream replayed against the wrong model can make every point forensic, so they go to an
//! unlinked file under $TMPDIR in the kernel's own line form (which reads back byte for byte) and
//! are read back once, at the end. The file vanishes with the process, however it ends.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use anyhow::Context;
use tsem_core::event::Event;
use tsem_format::{RecordKind, RecordParser, write_event};

/// An unlinked scratch file of description lines.
pub struct Spill {
    out: BufWriter<File>,
    path: PathBuf,
    line: Vec<u8>,
    count: u64,
}

impl Spill {
    /// A fresh scratch file under the temp directory, unlinked at once.
    pub fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir();
        // The pid and a counter make the name unique within the machine; `create_new` refuses
        // to follow anything planted there.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".tsem-forensics-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("{}: cannot create the forensics spill", path.display()))?;
        std::fs::remove_file(&path)
            .with_context(|| format!("{}: cannot unlink the forensics spill", path.display()))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
            line: Vec::with_capacity(2048),
            count: 0,
        })
    }

    /// Append one description.
    pub fn push(&mut self, ev: &Event) -> anyhow::Result<()> {
        self.line.clear();
        write_event(&mut self.line, ev, RecordKind::Trajectory);
        self.line.push(b'\n');
        self.out.write_all(&self.line).with_context(|| {
            format!("{}: cannot write the forensics spill", self.path.display())
        })?;
        self.count += 1;
        Ok(())
    }

    /// Hand every description to `f`, in the order pushed, reading them back one at a time.
    pub fn for_each(self, mut f: impl FnMut(Event) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let name = format!("{} (forensics spill)", self.path.display());
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("{name}: cannot flush: {}", e.error()))?;
        file.seek(SeekFrom::Start(0))
            .with_context(|| format!("{name}: cannot rewind"))?;
        let mut input = BufReader::with_capacity(1 << 16, file);
        let mut parser = RecordParser::new();
        let mut read = 0u64;
        crate::replay::for_each_record(&name, &mut input, &mut parser, |_, record| {
            match record {
                tsem_format::Record::Event { event, .. } => f(event)?,
                _ => anyhow::bail!("{name}: a record that is not an event description"),
            }
            read += 1;
            Ok(())
        })?;
        anyhow::ensure!(
            read == self.count,
            "{name}: {} descriptions written, {read} read back",
            self.count
        );
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spilled_descriptions_read_back_identical_and_in_order() {
        let events = crate::bench::synthetic_events(500, 7);
        let mut s = Spill::new().unwrap();
        for ev in &events {
            s.push(ev).unwrap();
        }
        assert_eq!(s.count, 500);
        let mut back = Vec::new();
        s.for_each(|ev| {
            back.push(ev);
            Ok(())
        })
        .unwrap();
        assert_eq!(back, events);
    }
}
