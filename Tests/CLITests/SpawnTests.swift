#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
import TestKit

/// TestKit's `Spawn`, which starts every child of the tests and the bench (instead of
/// Foundation's `Process`, which crashed a test process that held 2,000 sockets).
@Suite("Starting child processes")
struct SpawnTests {
    @Test("With 2,000 descriptors open here, a child gets only its three streams")
    func childInheritsNothing() throws {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let extra = Int(min(2_000, limit.rlim_cur > 100 ? limit.rlim_cur - 100 : 0))
        try #require(extra >= 500, "RLIMIT_NOFILE is \(limit.rlim_cur): too low for this test")
        // Plain open(): not close-on-exec, so only the spawn's closefrom keeps them from the child.
        let held = (0..<extra).map { _ in open("/dev/null", O_RDONLY) }
        defer { held.forEach { _ = close($0) } }
        #expect(held.allSatisfy { $0 >= 0 })
        // ls lists its own descriptors: its three streams and the one it reads the folder with.
        let (ending, output, errors) = try Spawn.run("/bin/ls", ["/proc/self/fd"])
        #expect(ending == .exited(0), "\(errors)")
        let listed = String(decoding: output, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }.sorted()
        #expect(listed == [0, 1, 2, 3], "the child had \(listed.count) descriptors")
    }

    @Test("An exit status and a killing signal are told apart")
    func endings() throws {
        #expect(try Spawn.run("/bin/sh", ["-c", "exit 7"]).ending == .exited(7))
        #expect(try Spawn.run("/bin/sh", ["-c", "kill -9 $$"]).ending == .signalled(SIGKILL))
        // SIGPIPE is back to its default in the child, as a shell would leave it.
        #expect(try Spawn.run("/bin/sh", ["-c", "kill -PIPE $$"]).ending == .signalled(SIGPIPE))
    }

    @Test("A missing executable is one clear error")
    func missingExecutable() throws {
        #expect {
            _ = try Spawn.run("/nonexistent/tool", [])
        } throws: { error in
            "\(error)" == "cannot start /nonexistent/tool: No such file or directory"
        }
    }

    @Test("A ChildProcess gets its input, its environment, and reports its end")
    func childProcess() throws {
        let child = try ChildProcess("cat", ["-c", "cat; echo \"$SPAWN_TEST\" >&2"], executable: URL(fileURLWithPath: "/bin/sh"),
                                     input: Array("line one\n".utf8), environment: ["SPAWN_TEST": "from the test"])
        let exit = try #require(child.waitForExit(timeout: .seconds(10)))
        #expect(exit.isCleanExitZero)
        #expect(child.output.waitForEnd(timeout: 10) && child.errors.waitForEnd(timeout: 10))
        #expect(child.output.text == "line one\n")
        #expect(child.errors.text == "from the test\n")
    }
}
