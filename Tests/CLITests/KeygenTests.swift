import Foundation
import LinkCore
import Testing
@testable import Socket2SerCLI

/// `socket2ser keygen`, run as the real executable.
extension ExecutableTests {
    @Test("keygen > FILE: the file is made private (0600) and holds a key --key-file takes; two keys differ")
    func keygenToFile() throws {
        let folder = try ScratchFolder()
        var keys: [[UInt8]] = []
        for name in ["a.key", "b.key"] {
            let path = try folder.write("", to: name, mode: 0o644)  // as a shell with umask 022 makes it
            let handle = try #require(FileHandle(forWritingAtPath: path))
            let result = try Socket2SerProcess.run(["keygen"], standardOutput: handle)
            try handle.close()
            #expect(result.exitCode == 0, "\(result.standardError)")
            #expect(result.standardError.isEmpty, "\(result.standardError)")
            #expect(try folder.mode(of: name) == 0o600)
            keys.append(try KeyFile.load(path))
        }
        #expect(keys[0] != keys[1])
    }

    @Test("keygen to a pipe writes the key file's text; on a terminal it refuses, and the terminal gets nothing")
    func keygenToPipeAndTerminal() throws {
        let piped = try Socket2SerProcess.run(["keygen"])
        #expect(piped.exitCode == 0 && piped.standardError.isEmpty, "\(piped.standardError)")
        #expect(try LinkProtection.parseKeyFile(piped.standardOutput).count == LinkProtection.keyLength)

        let terminal = try PseudoTerminal()
        let onScreen = try Socket2SerProcess.run(
            ["keygen"], standardOutput: FileHandle(fileDescriptor: terminal.slave, closeOnDealloc: false))
        #expect(onScreen.exitCode == 1)
        #expect(onScreen.errorLines == ["socket2ser: \(KeygenCommand.terminalRefusal)"], "\(onScreen.standardError)")
        #expect(KeygenCommand.terminalRefusal.contains("socket2ser keygen > link.key"))
        // Whatever the child wrote to the terminal would be waiting at the master side by now.
        var pending = pollfd(fd: terminal.master, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pending, 1, 0) == 0, "something reached the terminal")
    }

    @Test("keygen -o FILE creates it with mode 0600, and never replaces an existing file")
    func keygenOutputOption() throws {
        let folder = try ScratchFolder()
        let path = "\(folder.path)/link.key"
        let created = try Socket2SerProcess.run(["keygen", "-o", path])
        #expect(created.exitCode == 0, "\(created.standardError)")
        #expect(created.standardOutput.isEmpty)
        #expect(created.errorLines.count == 1 && created.errorLines[0].contains(path), "\(created.standardError)")
        #expect(try folder.mode(of: "link.key") == 0o600)
        let key = try KeyFile.load(path)

        for flag in ["-o", "--output"] {
            let again = try Socket2SerProcess.run(["keygen", flag, path])
            #expect(again.exitCode == 1)
            #expect(again.errorLines == ["socket2ser: \(path) exists already; a key file is never replaced (remove it first, or choose another name)"],
                    "\(again.standardError)")
            #expect(try KeyFile.load(path) == key)
        }
        let nowhere = try Socket2SerProcess.run(["keygen", "-o", "\(folder.path)/no/such/folder.key"])
        #expect(nowhere.exitCode == 1)
        #expect(nowhere.errorLines == ["socket2ser: cannot create \(folder.path)/no/such/folder.key: no such file or directory"])
    }
}
