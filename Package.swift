// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "SocketForwardSerial",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "socket2ser", targets: ["socket2ser"]),
        .library(name: "LinkCore", targets: ["LinkCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The dashboard: an HTTP server on the links' own event loop group, without the
        // swift-configuration and full-Foundation extras it does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // ChaCha20-Poly1305, HMAC and HKDF for the pre-shared-key protection (docs/protocol.md §11).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // The protocol core: pure Swift, no I/O, no clock, no threads (docs/protocol.md).
        // Without unsafe flags, so another package can depend on the LinkCore product; libm for
        // the square root in the frame-size rule (docs/protocol.md §8.2), which an unoptimised
        // build calls rather than inlines.
        .target(name: "LinkCore", dependencies: [
            "CLinkAccel",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
        ], linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]),
        // CRC-32C with the SSE4.2 instruction and memchr for COBS: the core's hot loops; and
        // zlib's raw deflate for compressed stream data (docs/protocol.md §5.7).
        .target(name: "CLinkAccel", linkerSettings: [.linkedLibrary("z")]),
        // Two cores over a simulated faulty cable with a virtual clock.
        .target(name: "LinkSimulation", dependencies: ["LinkCore"]),
        .executableTarget(name: "linksim", dependencies: ["LinkSimulation"]),

        // Serial devices: termios2 shim, exclusive open, raw mode, any baud rate.
        .target(name: "CSerialShim"),
        .target(name: "SerialPort", dependencies: ["CSerialShim"]),
        // Two pseudo-terminals joined like a null-modem cable, paced like a UART, with faults.
        .target(name: "VirtualCable", dependencies: ["CSerialShim", "SerialPort"]),

        // The I/O shell: one NIO event loop carrying the serial line and every TCP connection.
        .target(name: "Forwarding", dependencies: [
            "LinkCore", "LegacyWire", "SerialPort",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The dashboard (docs/api.md): links, streams, forwards, events and a port picker in the
        // browser, a JSON API with server-sent events, and Prometheus /metrics. The page's files
        // are embedded in the binary.
        .target(name: "Dashboard", dependencies: [
            "Forwarding", "SerialPort", "LinkCore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], resources: [.embedInCode("Assets")]),
        // The benchmark harness behind `socket2ser bench`, kept apart from the command line the way
        // swift-nio keeps its performance tester: it drives the real executable (cable, S and C as
        // child processes, found through /proc/self/exe) with blocking sockets and threads of its
        // own, so it needs Foundation and, for the descriptor limit, Forwarding.
        // The original socket2ser.py's line protocol (docs/legacy-protocol.md), sans-IO.
        .target(name: "LegacyWire", dependencies: ["LinkCore"]),
        .target(name: "Socket2SerBench", dependencies: [
            "Forwarding", "TestKit", "LinkSimulation", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Command line: the original's S/C form plus cable, demo and the bench command (options only).
        .target(name: "Socket2SerCLI", dependencies: [
            "Forwarding", "VirtualCable", "SerialPort", "LinkCore", "Socket2SerBench", "TestKit", "Dashboard",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "socket2ser", dependencies: ["Socket2SerCLI"]),

        .testTarget(name: "LinkCoreTests", dependencies: ["LinkCore", "LinkSimulation", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "LinkSimulationTests", dependencies: ["LinkSimulation", "LinkCore"]),
        .testTarget(name: "SerialPortTests", dependencies: ["SerialPort", "CSerialShim"]),
        .testTarget(name: "VirtualCableTests", dependencies: ["VirtualCable", "CSerialShim"]),
        // posix_spawn with closefrom, for TestKit's child processes (TestKit/Spawn.swift).
        .target(name: "CProcessShim"),
        // The one kit of the tests, the bench and the demo: payloads, free ports, waiting for a
        // condition, child processes, the cable with its ends (as processes or in this process),
        // target services.
        .target(name: "TestKit", dependencies: [
            "Forwarding", "VirtualCable", "SerialPort", "CProcessShim",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "CLITests", dependencies: ["Socket2SerCLI", "TestKit", "Dashboard", "Forwarding", "SerialPort"]),
        // The bench's own pieces (its SHA-256), without running a scenario.
        .testTarget(name: "Socket2SerBenchTests", dependencies: ["Socket2SerBench"]),
        .testTarget(name: "LegacyWireTests", dependencies: ["LegacyWire", "LinkCore"]),
        // Forwarding's own pieces, without processes: forwards, policy, and (on NIO's embedded
        // event loop, with virtual time) its handlers.
        // Seeded mutation fuzzing of every parser that reads what a peer or a user sends
        // (scripts/test runs it as a step of its own).
        .testTarget(name: "FuzzTests", dependencies: [
            "LinkCore", "Forwarding", "Socket2SerCLI", "LegacyWire",
            .product(name: "NIOCore", package: "swift-nio"),
        ], exclude: ["corpus"]),
        .testTarget(name: "ForwardingTests", dependencies: [
            "Forwarding", "LinkCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "EndToEndTests", dependencies: [
            "VirtualCable", "CSerialShim", "Forwarding", "LinkCore", "SerialPort", "TestKit",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
