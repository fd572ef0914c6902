import Socket2SerCLI

// `runMain` rather than ArgumentParser's `main()`: one-line errors, exit 2 for usage errors and
// 1 for runtime failures (see Socket2Ser.runMain).
await Socket2Ser.runMain()
