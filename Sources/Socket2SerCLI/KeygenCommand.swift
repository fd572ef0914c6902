#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Forwarding
import LinkCore

/// `socket2ser keygen`: a new pre-shared key for `--key-file`, written so that it is private from
/// the start and never shown on a screen.
///
/// - To standard output: refused on a terminal (a key on a screen stays in its scrollback);
///   a regular file (`socket2ser keygen > link.key`) is made private (mode 0600) before a byte
///   of the key is written; a pipe gets the key as it is (`… | ssh board 'umask 077; cat > link.key'`).
/// - To `-o FILE`: the file is created with mode 0600, and a file that exists already is never
///   replaced, since its key is likely one the other end holds a copy of.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a new pre-shared key for --key-file.",
        discussion: """
            Writes a new random 256-bit key in the form --key-file reads:
              socket2ser keygen > link.key     (the file is made readable by you only)
              socket2ser keygen -o link.key    (creates it, mode 0600; never replaces one)
            Give the other end a copy of the same file (e.g. scp -p) and start both with \
            --key-file link.key. The key is never printed on a terminal.
            """)

    @Option(name: [.customShort("o"), .customLong("output")],
            help: ArgumentHelp("Create this file, mode 0600, and write the key there; an existing file is refused.",
                               valueName: "file"))
    var output: String?

    /// A key that could not be written, in one line; the key itself is never part of it.
    struct Refusal: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    static let terminalRefusal =
        "refusing to print a key on a terminal, where it would stay in the scrollback; run: socket2ser keygen > link.key"

    func run() throws {
        let text = LinkProtection.keyFileText(LinkProtection.generateKey())
        if let output {
            try Self.create(output, holding: text)
            StandardError.write("socket2ser: new key in \(output) (mode 0600); give the other end a copy, and both --key-file \(output)\n")
        } else {
            try Self.writeToStandardOutput(text)
        }
    }

    /// Standard output: not a terminal; made private first if it is a file.
    static func writeToStandardOutput(_ text: String) throws(Refusal) {
        if isatty(STDOUT_FILENO) == 1 { throw Refusal(description: terminalRefusal) }
        var info = stat()
        guard fstat(STDOUT_FILENO, &info) == 0 else {
            throw Refusal(description: "cannot write the key to standard output: \(PlainErrors.phrase(errno: errno))")
        }
        if info.st_mode & mode_t(S_IFMT) == mode_t(S_IFREG), fchmod(STDOUT_FILENO, 0o600) != 0 {
            throw Refusal(description: "standard output is a file that cannot be made private (chmod 600): "
                          + "\(PlainErrors.phrase(errno: errno)); the key was not written")
        }
        guard writeAll(STDOUT_FILENO, text) else {
            throw Refusal(description: "cannot write the key to standard output: \(PlainErrors.phrase(errno: errno))")
        }
    }

    /// A new file, created with mode 0600 (O_EXCL: never one that exists, nor through a symlink).
    static func create(_ path: String, holding text: String) throws(Refusal) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST {
                throw Refusal(description: "\(path) exists already; a key file is never replaced (remove it first, or choose another name)")
            }
            throw Refusal(description: "cannot create \(path): \(PlainErrors.phrase(errno: errno))")
        }
        // The umask may have taken more than group and others' bits; the owner needs to read it.
        let written = fchmod(fd, 0o600) == 0 && writeAll(fd, text)
        let failure = errno
        if close(fd) != 0 || !written {
            let reason = PlainErrors.phrase(errno: written ? errno : failure)
            unlink(path)  // a partial key file would only be refused later, with less of a clue
            throw Refusal(description: "cannot write the key to \(path): \(reason)")
        }
    }

    private static func writeAll(_ fd: CInt, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += count
        }
        return true
    }
}
