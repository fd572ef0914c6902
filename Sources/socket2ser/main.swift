import Socket2SerCLI
Socket2Ser.main()
