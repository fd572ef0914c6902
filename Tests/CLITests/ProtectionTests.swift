import Foundation
import Forwarding
import LinkCore
import Testing
@testable import Socket2SerCLI

// MARK: - --key-file and --protect on the command line

@Suite("Protection: options")
struct ProtectionOptionTests {
    @Test("--key-file on S, C and link: encrypt by default, --protect authenticate; the key is the file's")
    func keyFileOnEveryEnd() throws {
        let folder = try ScratchFolder()
        let keyFile = try folder.write(sampleKeyText, to: "link.key")
        let key = try LinkProtection.parseKeyFile(sampleKeyText)
        for (role, extra) in [("S", ["-port", "22"]), ("C", ["-port", "22"]), ("link", [])] {
            let base = [role, "-com", "/dev/x"] + extra
            #expect(try Socket2Ser.configuration(for: base).protection == nil, "\(role)")
            let plain = try Socket2Ser.configuration(for: base + ["--key-file", keyFile])
            #expect(plain.protection == (try LinkProtection(key: key, mode: .encrypt)), "\(role)")
            for mode in LinkProtection.Mode.allCases {
                let configuration = try Socket2Ser.configuration(for: base + ["--key-file", keyFile, "--protect", "\(mode)"])
                #expect(configuration.protection == (try LinkProtection(key: key, mode: mode)), "\(role) --protect \(mode)")
            }
        }
    }

    @Test("demo takes --key-file and --protect for both of its ends")
    func demo() throws {
        let command = try Socket2Ser.parseCommand(["demo", "--key-file", "/k", "--protect", "authenticate"])
        let demo = try #require(command as? DemoCommand)
        #expect(demo.keyFile == "/k" && demo.protect == .authenticate)
    }

    @Test("--protect without --key-file, and an unknown --protect, are usage errors",
          arguments: [["S", "-port", "22", "-com", "/dev/x"], ["C", "-port", "22", "-com", "/dev/x"],
                      ["link", "-com", "/dev/x"], ["demo"]])
    func protectRefusals(base: [String]) throws {
        guard case .finish(let alone) = Socket2Ser.prepare(base + ["--protect", "encrypt"]) else {
            Issue.record("--protect without a key was taken")
            return
        }
        #expect(alone.exitCode == 2)
        #expect(alone.standardError.hasPrefix("socket2ser: error: --protect needs --key-file"), "\(alone.standardError)")
        guard case .finish(let unknown) = Socket2Ser.prepare(base + ["--key-file", "/k", "--protect", "sign"]) else {
            Issue.record("--protect sign was taken")
            return
        }
        #expect(unknown.exitCode == 2)
        #expect(unknown.standardError.contains("'sign'") && unknown.standardError.contains("--protect"))
        #expect(unknown.standardError.contains("encrypt") && unknown.standardError.contains("authenticate"))
    }

    @Test("A key file that cannot be used is refused when the end starts, naming the file, never showing it")
    func keyFileRefusals() throws {
        let folder = try ScratchFolder()
        let open = try folder.write(sampleKeyText, to: "open.key", mode: 0o644)
        let groupWritable = try folder.write(sampleKeyText, to: "gw.key", mode: 0o620)
        let malformed = try folder.write("# not a key\n\(sampleKeyHex)zz\n", to: "bad.key")
        let short = try folder.write("0011223344\n", to: "short.key")
        let twoKeys = try folder.write("\(sampleKeyHex)\n\(sampleKeyHex)\n", to: "two.key")
        let binary = try folder.write(Data([0xff, 0xfe, 0x00, 0x41] + Array(sampleKeyHex.utf8)), to: "bin.key")
        let cases: [(String, String)] = [
            (open, "key file \(open) is readable by others (mode 0644); run: chmod 600 \(open)"),
            (groupWritable, "key file \(groupWritable) is writable by others (mode 0620); run: chmod 600 \(groupWritable)"),
            ("\(folder.path)/missing.key", "key file \(folder.path)/missing.key: no such file or directory"),
            (folder.path, "key file \(folder.path) is not a regular file"),
            (malformed, "key file \(malformed): it does not hold a key: expected one line of 64 hexadecimal digits"),
            (short, "key file \(short): the key is 5 bytes; a key is 32 bytes"),
            (twoKeys, "key file \(twoKeys): it does not hold a key"),
            (binary, "key file \(binary): it does not hold a key"),
        ]
        for (path, expected) in cases {
            do {
                _ = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x", "--key-file", path])
                Issue.record("\(path) was taken")
            } catch {
                let text = "\(error)"
                #expect(text.hasPrefix(expected), "\(text)")
                #expect(!text.contains("\n") && !text.contains(sampleKeyHex), "\(text)")
                // As the executable reports it: one line, exit 1.
                let outcome = Socket2Ser.outcome(forRunError: error)
                #expect(outcome.exitCode == 1 && outcome.standardError == "socket2ser: \(text)\n")
            }
        }
    }

    @Test("The suggested chmod can be pasted as it is, whatever the file's name",
          arguments: [("link.key", "link.key"), ("/etc/socket2ser/board-1.key", "/etc/socket2ser/board-1.key"),
                      ("my key", "'my key'"), ("it's.key", "'it'\\''s.key'"), ("$HOME.key", "'$HOME.key'")])
    func chmodHint(path: String, word: String) {
        #expect(KeyFile.shellWord(path) == word)
    }

    @Test("A key file far larger than a key is refused without being read")
    func largeKeyFile() throws {
        let folder = try ScratchFolder()
        let large = try folder.write(String(repeating: "# padding\n", count: 10_000) + sampleKeyHex + "\n", to: "large.key")
        #expect(throws: KeyFile.Problem(description: "key file \(large) is 100065 bytes: too large to be a key file")) {
            try KeyFile.load(large)
        }
    }

    @Test("The key reaches no description of the configuration")
    func keyStaysHidden() throws {
        let folder = try ScratchFolder()
        let keyFile = try folder.write(sampleKeyText, to: "link.key")
        let configuration = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x", "--key-file", keyFile])
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in [String(describing: configuration), String(reflecting: configuration), dumped,
                     configuration.startLine(listeningPort: nil)] {
            #expect(!text.lowercased().contains(sampleKeyHex), "\(text)")
        }
    }

    @Test("A new key is a restart of the line, not a live change")
    func keyChangeRestarts() throws {
        let folder = try ScratchFolder()
        let first = try folder.write(sampleKeyText, to: "a.key")
        let second = try folder.write(LinkProtection.keyFileText(LinkProtection.generateKey()), to: "b.key")
        let base = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x", "--key-file", first])
        let rekeyed = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x", "--key-file", second])
        let remoded = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x", "--key-file", first,
                                                          "--protect", "authenticate"])
        #expect(!base.differsOnlyInForwardsAndRules(from: rekeyed))
        #expect(!base.differsOnlyInForwardsAndRules(from: remoded))
        #expect(base.differsOnlyInForwardsAndRules(from: base))
    }
}

// MARK: - The executable

extension ExecutableTests {
    @Test("--key-file readable by others, or not a key: one line naming the file, exit 1, the key never shown")
    func keyFileRefusedByTheExecutable() throws {
        let folder = try ScratchFolder()
        let open = try folder.write(sampleKeyText, to: "open.key", mode: 0o644)
        let readable = try Socket2SerProcess.run(["S", "-port", "22", "-com", "/dev/null", "--key-file", open])
        #expect(readable.exitCode == 1)
        #expect(readable.errorLines == ["socket2ser: key file \(open) is readable by others (mode 0644); run: chmod 600 \(open)"],
                "\(readable.standardError)")

        let bad = try folder.write("# mine\n\(sampleKeyHex)0\n", to: "bad.key")
        let malformed = try Socket2SerProcess.run(["C", "-port", "1", "-com", "/dev/null", "--key-file", bad])
        #expect(malformed.exitCode == 1)
        #expect(malformed.errorLines == ["socket2ser: key file \(bad): it does not hold a key: expected one line of 64 hexadecimal digits (socket2ser keygen writes one)"],
                "\(malformed.standardError)")
        for result in [readable, malformed] {
            #expect(!result.standardError.contains(sampleKeyHex) && result.standardOutput.isEmpty)
        }
    }

    @Test("--protect without --key-file, or an unknown mode: one usage line, exit 2")
    func protectRefusedByTheExecutable() throws {
        let alone = try Socket2SerProcess.run(["link", "-com", "/dev/null", "--protect", "authenticate"])
        #expect(alone.exitCode == 2)
        #expect(alone.errorLines == ["socket2ser: error: \(ArgumentValues.protectWithoutKey) (see 'socket2ser link --help')"],
                "\(alone.standardError)")
        let unknown = try Socket2SerProcess.run(["link", "-com", "/dev/null", "--key-file", "/k", "--protect", "sign"])
        #expect(unknown.exitCode == 2)
        #expect(unknown.errorLines == ["socket2ser: error: the value 'sign' is invalid for '--protect <encrypt|authenticate>': protection is encrypt (the default: confidentiality and integrity) or authenticate (integrity only, the traffic stays readable) (see 'socket2ser link --help')"],
                "\(unknown.standardError)")
    }
}
