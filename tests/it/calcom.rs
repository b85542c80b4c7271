//! The Cal.com client against the embedded mock over real HTTP (to be written).
