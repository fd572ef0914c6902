import Foundation
import Testing
@testable import Socket2SerBench

/// The bench's SHA-256 (swift-crypto's, behind the bench's own small interface) against FIPS 180-4's examples, in one piece and in odd pieces.
@Suite("Bench SHA-256")
struct BenchSHA256Tests {
    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test("known digests", arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func vectors(text: String, expected: String) {
        var whole = BenchSHA256()
        whole.update(Array(text.utf8))
        #expect(hex(whole.finalize()) == expected)
        var pieces = BenchSHA256()
        for byte in text.utf8 { pieces.update([byte]) }
        #expect(hex(pieces.finalize()) == expected)
    }

    @Test("a million a's, fed in blocks of 1000")
    func million() {
        var hasher = BenchSHA256()
        let block = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { hasher.update(block) }
        #expect(hex(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
