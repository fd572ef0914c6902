import Foundation
import Forwarding
import LinkCore
import Testing
@testable import Socket2SerCLI

// MARK: - key-file: and protect: in the config file

@Suite("Protection: config file")
struct ProtectionConfigTests {
    @Test("key-file: and protect: per line; a relative key file is taken from the config file's folder")
    func configKeys() throws {
        let folder = try ScratchFolder()
        try folder.write(sampleKeyText, to: "radio.key")
        let absolute = try folder.write(sampleKeyText, to: "board.key")
        let config = try folder.write("""
            lines:
              radio:
                device: /dev/ttyUSB0
                key-file: radio.key
                protect: authenticate
              board:
                device: /dev/ttyUSB1
                key-file: \(absolute)
              plain:
                device: /dev/ttyUSB2

            """, to: "socket2ser.yaml", mode: 0o644)
        let key = try LinkProtection.parseKeyFile(sampleKeyText)
        // Loaded from elsewhere than the folder: the relative name still means the folder's file.
        let file = try ConfigFile.load(path: config)
        #expect(file.lines.map(\.configuration.protection) == [
            try LinkProtection(key: key, mode: .authenticate), try LinkProtection(key: key, mode: .encrypt), nil])
    }

    @Test("socks-password-file: and ui-token-file: are taken from the config file's folder too")
    func otherPathsAlike() throws {
        let folder = try ScratchFolder()
        try folder.write("opensesame\n", to: "socks.password")
        let config = try folder.write("""
            ui: 0
            ui-token-file: ui.token
            lines:
              a:
                device: /dev/x
                dynamic: 1080
                socks-username: me
                socks-password-file: socks.password

            """, to: "s.yaml", mode: 0o644)
        let file = try ConfigFile.load(path: config)
        #expect(file.lines[0].configuration.socksCredentials == .init(username: "me", password: "opensesame"))
        #expect(file.dashboard?.tokenFile == "\(folder.path)/ui.token")
    }

    @Test("Relative paths in the file are the file's folder's; absolute ones and a file without a folder stay as written",
          arguments: [("link.key", "/etc/socket2ser/s.yaml", "/etc/socket2ser/link.key"),
                      ("keys/link.key", "conf/s.yaml", "conf/keys/link.key"),
                      ("/keys/link.key", "/etc/s.yaml", "/keys/link.key"),
                      ("link.key", "s.yaml", "link.key")])
    func resolution(written: String, config: String, expected: String) {
        #expect(ConfigFile.resolved(written, against: config) == expected)
    }

    @Test("Mistakes in key-file: and protect: are one located line each, never showing the key")
    func configRefusals() throws {
        let folder = try ScratchFolder()
        let good = try folder.write(sampleKeyText, to: "good.key")
        let open = try folder.write(sampleKeyText, to: "open.key", mode: 0o604)
        let bad = try folder.write("\(sampleKeyHex.dropLast(2))\n", to: "bad.key")
        func refusal(_ settings: String) throws -> String {
            let text = "lines:\n  a:\n    device: /dev/x\n" + settings
            do {
                _ = try ConfigFile.parse(text, path: "\(folder.path)/f.yaml")
                Issue.record("taken: \(settings)")
                return ""
            } catch {
                #expect(!error.description.contains("\n") && !error.description.contains(sampleKeyHex))
                return error.description
            }
        }
        let f = "\(folder.path)/f.yaml"
        #expect(try refusal("    protect: encrypt\n")
                == "\(f):4: line 'a': 'protect' needs 'key-file': protection is with a pre-shared key (socket2ser keygen makes one)")
        #expect(try refusal("    key-file: \(good)\n    protect: seal\n").hasPrefix(
            "\(f):5: line 'a': 'protect': protection is encrypt (the default: confidentiality and integrity) or authenticate"))
        #expect(try refusal("    key-file: open.key\n")
                == "\(f):4: line 'a': key file \(open) is readable by others (mode 0604); run: chmod 600 \(open)")
        #expect(try refusal("    key-file: bad.key\n")
                == "\(f):4: line 'a': key file \(bad): the key is 31 bytes; a key is 32 bytes (64 hexadecimal digits)")
        #expect(try refusal("    key-file: none.key\n")
                == "\(f):4: line 'a': key file \(folder.path)/none.key: no such file or directory")
        #expect(try refusal("    key-file:\n").hasPrefix("\(f):4: line 'a': 'key-file': give the path of a key file"))
        #expect(try refusal("    key-file: [a, b]\n") == "\(f):4: line 'a': 'key-file' takes a single value")
        #expect(try refusal("    keyfile: good.key\n") == "\(f):4: line 'a': unknown key 'keyfile' (did you mean 'key-file'?)")
        #expect(try refusal("    protection: encrypt\n") == "\(f):4: line 'a': unknown key 'protection' (did you mean 'protect'?)")
    }
}

// MARK: - The executable

extension ExecutableTests {
    @Test("run --config --check: key-file and protect are checked with the file, and the summary names the mode only")
    func configKeyFileCheck() throws {
        let folder = try ScratchFolder()
        try folder.write(sampleKeyText, to: "radio.key")
        let config = try folder.write("lines:\n  radio:\n    device: /dev/ttyUSB0\n    key-file: radio.key\n    protect: authenticate\n",
                                      to: "good.yaml", mode: 0o644)
        let checked = try Socket2SerProcess.run(["run", "--config", config, "--check"])
        #expect(checked.exitCode == 0, "\(checked.standardError)")
        #expect(checked.standardOutput == "\(config): OK: 1 line(s): radio (/dev/ttyUSB0, 0 forward(s), protect authenticate)\n")

        let open = try folder.write(sampleKeyText, to: "open.key", mode: 0o640)
        let refused = try folder.write("lines:\n  radio:\n    device: /dev/ttyUSB0\n    key-file: open.key\n",
                                       to: "bad.yaml", mode: 0o644)
        let result = try Socket2SerProcess.run(["run", "--config", refused, "--check"])
        #expect(result.exitCode == 1)
        #expect(result.errorLines == ["socket2ser: \(refused):4: line 'radio': key file \(open) is readable by others (mode 0640); run: chmod 600 \(open)"],
                "\(result.standardError)")
        #expect(!result.standardError.contains(sampleKeyHex) && !checked.standardOutput.contains(sampleKeyHex))
    }
}
