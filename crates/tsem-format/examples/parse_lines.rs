//! Parse every line of FILE, ROUNDS times, and print the count: a small target for callgrind
//! (`valgrind --tool=callgrind target/release/examples/parse_lines FILE 100`), built without the
//! CLI's link-time optimisation so that it takes seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: parse_lines FILE [ROUNDS]");
    let rounds: usize = args.next().map_or(1, |r| r.parse().expect("ROUNDS"));
    let text = std::fs::read(&path).expect("read FILE");
    let mut parser = tsem_format::RecordParser::new();
    let mut events = 0u64;
    for _ in 0..rounds {
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(tsem_format::Record::Event { event, .. }) = parser.parse(line) {
                std::hint::black_box(&event);
                events += 1;
            }
        }
    }
    println!("{events} events");
}
