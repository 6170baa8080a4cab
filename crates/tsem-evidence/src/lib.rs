//! Measured-boot and integrity evidence parsers (in progress).
