//! Userspace TSEM sensor (in progress).
