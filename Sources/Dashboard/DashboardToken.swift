#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The access token every change through the dashboard needs (docs/api.md, Security).
public enum DashboardToken {
    /// 256 random bits, in hex.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
    }

    /// Reads a token the user configured; the file must be readable by its owner only, as ssh
    /// insists for a private key.
    public static func load(path: String) throws(DashboardError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw .badRequest("\(path): cannot read the dashboard token: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw .badRequest("\(path): the dashboard token file is readable by others; chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .badRequest("\(path): cannot read the dashboard token")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 16, !token.contains(where: { $0.isWhitespace }) else {
            throw .badRequest("\(path): a dashboard token is one word of at least 16 characters")
        }
        return token
    }

    /// Where a generated token is kept: `$XDG_RUNTIME_DIR/socket2ser/ui-token`, else
    /// `~/.socket2ser/ui-token`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return "\(runtime)/socket2ser/ui-token" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return "\(home)/.socket2ser/ui-token"
    }

    /// Writes `token` to `path`, readable by the user only (its folder too, when made here).
    public static func store(_ token: String, at path: String) throws(DashboardError) {
        let folder = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: folder) {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw .badRequest("\(folder): cannot make the folder for the dashboard token")
            }
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw .badRequest("\(path): cannot write the dashboard token: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array((token + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw .badRequest("\(path): cannot write the dashboard token: \(String(cString: strerror(errno)))")
        }
    }

    /// Compares in time that does not depend on where the texts differ.
    static func matches(_ given: Substring, _ token: String) -> Bool {
        let a = Array(given.utf8), b = Array(token.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
