#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The command a user can type to talk to a local port, with what this machine has.
///
/// `nc` and `socat` are not installed everywhere, so the hint names the first one found on
/// `PATH` and always offers the built-in `socket2ser connect`, spelled as this executable can be
/// run from the current directory (`socket2ser` when it is on `PATH`, else its path).
enum ClientHint {
    struct Hint: Equatable {
        /// The command to suggest first.
        var primary: String
        /// The built-in client, when `primary` is something else.
        var alternative: String?
    }

    static func hint(port: Int, searchPath: String? = environment("PATH"),
                     executable: String = ClientHint.executableInvocation()) -> Hint {
        let builtin = "\(executable) connect 127.0.0.1:\(port)"
        if findExecutable("nc", searchPath: searchPath) != nil {
            return Hint(primary: "nc 127.0.0.1 \(port)", alternative: builtin)
        }
        if findExecutable("socat", searchPath: searchPath) != nil {
            return Hint(primary: "socat - TCP:127.0.0.1:\(port)", alternative: builtin)
        }
        return Hint(primary: builtin, alternative: nil)
    }

    /// The first executable file called `name` in `searchPath`, if any.
    static func findExecutable(_ name: String, searchPath: String?) -> String? {
        guard let searchPath else { return nil }
        for directory in searchPath.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// How to run this executable from the current directory: `socket2ser` if that name on PATH
    /// is this very file, else a path relative to the current directory when it lies below it
    /// (`.build/debug/socket2ser`), else the absolute path.
    static func executableInvocation() -> String {
        guard let executable = realPath("/proc/self/exe") ?? CommandLine.arguments.first.flatMap(realPath) else {
            return "socket2ser"
        }
        if let onPath = findExecutable("socket2ser", searchPath: environment("PATH")).flatMap(realPath),
           onPath == executable {
            return "socket2ser"
        }
        // SwiftPM's own short names (.build/debug is a link to the platform's folder).
        for candidate in [".build/debug/socket2ser", ".build/release/socket2ser"] where realPath(candidate) == executable {
            return candidate
        }
        if let directory = realPath("."), executable.hasPrefix(directory + "/") {
            return String(executable.dropFirst(directory.count + 1))
        }
        return executable
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
