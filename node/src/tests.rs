//! Unit tests of the engine parts wired over the in-memory peer transport.
