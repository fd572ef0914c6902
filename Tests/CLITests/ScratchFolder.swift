import Foundation

/// A folder of its own for one test's files, removed when the test is done with it.
final class ScratchFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("s2s-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `text` to `name` with exactly `mode` (the umask aside), and returns the path.
    @discardableResult
    func write(_ text: String, to name: String, mode: mode_t = 0o600) throws -> String {
        try write(Data(text.utf8), to: name, mode: mode)
    }

    @discardableResult
    func write(_ data: Data, to name: String, mode: mode_t = 0o600) throws -> String {
        let file = "\(path)/\(name)"
        try data.write(to: URL(fileURLWithPath: file))
        guard chmod(file, mode) == 0 else { throw CocoaError(.fileWriteNoPermission) }
        return file
    }

    func mode(of name: String) throws -> mode_t {
        var info = stat()
        guard stat("\(path)/\(name)", &info) == 0 else { throw CocoaError(.fileNoSuchFile) }
        return info.st_mode & 0o7777
    }
}

/// A key that is easy to spot if it ever leaked into a message.
let sampleKeyHex = String(repeating: "c0ffee", count: 10) + "c0ff"
let sampleKeyText = "# a test key\n\(sampleKeyHex)\n"
