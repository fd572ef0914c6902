#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Forwarding
import LinkCore

/// `--key-file` and `--protect`, and the config file's `key-file:` and `protect:`: the link's
/// pre-shared key, read from a file only its owner can read (docs/protocol.md §11).
///
/// Every refusal is one line that names the file and never shows what it holds: a key file that
/// cannot be opened, that others could read or write (refused as ssh refuses such a private
/// key, with the `chmod` that mends it), or that does not hold a key.
enum KeyFile {
    /// Why a key file cannot be used. The text names the file, never its contents.
    struct Problem: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// No key file is anywhere near this long (a comment line and 64 digits); a larger file is
    /// the wrong file, and is not read into memory.
    static let maximumSize = 64 * 1024

    /// The protection `--key-file` and `--protect` ask for: nil without a key file. `mode` alone
    /// is refused before this is called (`LinkOptions.validate`, the config file's check).
    static func protection(keyFile: String?, mode: LinkProtection.Mode?) throws(Problem) -> LinkProtection? {
        guard let keyFile else { return nil }
        let key = try load(keyFile)
        do {
            return try LinkProtection(key: key, mode: mode ?? .encrypt)
        } catch {
            throw Problem(description: "key file \(keyFile): \(error)")
        }
    }

    /// Reads and checks the key in `path`: a private regular file holding one key.
    static func load(_ path: String) throws(Problem) -> [UInt8] {
        let bytes = try readPrivate(path, what: "key file")
        // Not UTF-8 (or far too long) is not a key: parseKeyFile says what one looks like.
        let text = bytes.count <= maximumSize ? String(decoding: bytes, as: UTF8.self) : ""
        do {
            return try LinkProtection.parseKeyFile(text)
        } catch {
            throw Problem(description: "\(what(path)): \(error)")
        }
    }

    private static func what(_ path: String) -> String { "key file \(path)" }

    /// The bytes of a secret's file (`what` names it in messages: "key file", "password file"):
    /// a regular file of this user's, that group and others can neither read nor write, of at
    /// most `maximumSize` bytes. The checks are made on the opened file (`fstat`), so the file
    /// that was checked is the file that is read.
    static func readPrivate(_ path: String, what: String) throws(Problem) -> [UInt8] {
        // O_NONBLOCK: a FIFO given by mistake must not hang the start; it is refused below.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw Problem(description: "\(what) \(path): \(PlainErrors.phrase(errno: errno))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw Problem(description: "\(what) \(path): \(PlainErrors.phrase(errno: errno))")
        }
        guard info.st_mode & mode_t(S_IFMT) == mode_t(S_IFREG) else {
            throw Problem(description: "\(what) \(path) is not a regular file")
        }
        guard info.st_uid == geteuid() else {
            throw Problem(description: "\(what) \(path) belongs to another user; it must be this user's own")
        }
        if let exposure = exposure(ofMode: info.st_mode) {
            throw Problem(description: "\(what) \(path) is \(exposure) by others (mode \(octal(info.st_mode))); run: chmod 600 \(shellWord(path))")
        }
        guard Int(info.st_size) <= maximumSize else {
            throw Problem(description: "\(what) \(path) is \(info.st_size) bytes: too large to be a \(what)")
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= maximumSize {
            let count = read(fd, &buffer, buffer.count)
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw Problem(description: "\(what) \(path): \(PlainErrors.phrase(errno: errno))")
            }
            bytes += buffer[..<count]
        }
        return bytes
    }

    /// "readable" or "writable" when the group or others may read or write the file (the
    /// owner's bits are the owner's business); nil when the file is private.
    static func exposure(ofMode mode: mode_t) -> String? {
        guard mode & 0o077 != 0 else { return nil }
        if mode & 0o044 != 0 { return "readable" }
        if mode & 0o022 != 0 { return "writable" }
        return "accessible"
    }

    /// `path` as a shell reads it back: as it is when it is plain, else in single quotes, so the
    /// suggested `chmod` can be pasted as it is.
    static func shellWord(_ path: String) -> String {
        let plain = path.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "/._-+,:@%".unicodeScalars.contains(scalar))
        }
        return plain && !path.isEmpty ? path : "'" + path.map { $0 == "'" ? "'\\''" : String($0) }.joined() + "'"
    }

    /// `0644`: the permission bits as `ls -l` users and chmod spell them.
    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

extension ArgumentValues {
    static func protectionMode(_ text: String) throws -> LinkProtection.Mode {
        guard let mode = LinkProtection.Mode(name: text) else {
            throw CommandLineError("protection is encrypt (the default: confidentiality and integrity) or authenticate (integrity only, the traffic stays readable)")
        }
        return mode
    }

    /// The one-line refusal of `--protect` without a key.
    static let protectWithoutKey = "--protect needs --key-file: protection is with a pre-shared key (socket2ser keygen makes one)"
}
