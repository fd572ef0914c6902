import Testing

extension Tag {
    /// The test asserts on wall-clock time (a reset within a second, a shutdown within two, a
    /// paced rate). These run as a step of their own (scripts/test), so that a CPU-heavy suite
    /// beside them cannot make them late and a slow machine gives a clear signal.
    @Tag static var timing: Self
}
