import Foundation

/// Finds the built `socket2ser` executable for tests that run it as a real subprocess.
///
/// SwiftPM puts every product of a build, the test bundle included, in one products directory
/// (e.g. `.build/x86_64-unknown-linux-gnu/debug`). So the executable is looked up next to the test
/// bundle that is running now, which guarantees it comes from the same build and configuration as
/// the tests, whatever `--scratch-path` or `-c release` was used. (Searching upward from
/// `#filePath` for `.build/debug` would find a stale or differently configured binary;
/// `CommandLine.arguments[0]` is the `xctest` runner on macOS.) On Linux the test bundle is itself
/// the running executable; on macOS it is a loaded `.xctest` bundle. `SOCKET2SER_EXECUTABLE`
/// overrides the search, e.g. to test an installed copy.
public enum Socket2SerExecutable {
    public struct NotFound: Error, CustomStringConvertible {
        public let description: String
    }

    public static func url() throws -> URL {
        if let override = ProcessInfo.processInfo.environment["SOCKET2SER_EXECUTABLE"] {
            return URL(fileURLWithPath: override)
        }
        var directories: [URL] = []
        for bundle in [Bundle.main] + Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
            directories.append(bundle.bundleURL.deletingLastPathComponent())
        }
        if let running = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            directories.append(running.deletingLastPathComponent())
        }
        for directory in directories {
            let candidate = directory.appendingPathComponent("socket2ser")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw NotFound(description: "socket2ser not found next to the test bundle (looked in "
            + directories.map(\.path).joined(separator: ", ") + "); set SOCKET2SER_EXECUTABLE")
    }
}
