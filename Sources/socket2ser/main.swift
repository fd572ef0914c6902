import Socket2SerCLI

await Socket2Ser.main()
