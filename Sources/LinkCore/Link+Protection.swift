// MARK: - The keyed handshake (docs/protocol.md §11.1)

/// What a keyed end knows of the handshake: its own random for this session, the random of the
/// last HELLO that offered protection (for the proof in this end's next HELLO), and whom to echo
/// before a HELLO has proved the key.
struct ProtectionState: Sendable {
    var ourRandom: [UInt8]
    /// The randoms of the sessions before, whose proofs may still be on their way: a HELLO
    /// proving one is stale, not a wrong key.
    var previousRandoms: [[UInt8]] = []
    var peerRandom: [UInt8]?
    var candidateSession: UInt64?
    var reported: ProtectionMismatch?
}

/// What the keyed handshake makes of a HELLO.
enum HelloVerdict {
    /// Process it as an unkeyed end does.
    case proceed
    /// Not proved (yet): it changes nothing but what this end's next HELLO says.
    case hold
}

extension Link {
    static func freshRandom(_ protection: LinkProtection) -> [UInt8] {
        protection.randomBytes(LinkProtection.randomLength)
    }

    /// The PROTECTION extension without its proof: mode and random.
    func protectionExtension(proofRoom: Bool) -> HelloExtension? {
        guard let protection = configuration.protection, let p = protectionState else { return nil }
        return HelloExtension(type: HelloExtension.Types.protection,
                              value: [protection.mode.rawValue] + p.ourRandom
                                  + (proofRoom ? [UInt8](repeating: 0, count: LinkProtection.proofLength) : []))
    }

    /// Fills in the proof, the HELLO body's last 32 bytes, once the peer's random is known.
    func signHello(_ raw: inout [UInt8]) {
        guard let protection = configuration.protection, let peerRandom = protectionState?.peerRandom else { return }
        let end = raw.count - LinkProtection.proofLength
        let proof = protection.proof(receiverRandom: peerRandom, body: raw[1..<end])
        raw.replaceSubrange(end..<raw.count, with: proof)
    }

    /// The session this end's HELLO echoes.
    var helloEcho: UInt64 {
        if !isEstablished, let candidate = protectionState?.candidateSession { return candidate }
        return peerHello?.session ?? 0
    }

    mutating func reportProtection(_ why: ProtectionMismatch) {
        if protectionState != nil {
            guard protectionState!.reported != why else { return }
            protectionState!.reported = why
        } else {
            guard reportedUnkeyedMismatch != why else { return }
            reportedUnkeyedMismatch = why
        }
        events.append(.protectionMismatch(why))
    }

    /// Decides on a HELLO by the keys (§11.1): an end with a key proceeds only with a HELLO that
    /// proves the same key over this end's current random, in the same mode; an end without one
    /// never proceeds with a HELLO that offers protection.
    mutating func verifyHello(_ hello: Hello, body: ArraySlice<UInt8>, now: LinkTime) -> HelloVerdict {
        let previousPeerRandom = protectionState?.peerRandom
        let verdict = checkHello(hello, body: body)
        guard verdict == .hold else { return verdict }
        // A HELLO held back is answered at most once per HELLO interval: two ends that will
        // never agree would otherwise answer each other for ever. A new random is answered at
        // once, even on an established link: the peer may have restarted, and it needs this
        // end's proof over its new random to come back.
        let newRandom = protectionState.map { $0.peerRandom != previousPeerRandom } ?? false
        if newRandom || (hello.needsReply && lastHeldReplyAt.map({ now - $0 >= configuration.helloInterval }) ?? true) {
            helloReplyOwed = true
            lastHeldReplyAt = now
        }
        return verdict
    }

    private mutating func checkHello(_ hello: Hello, body: ArraySlice<UInt8>) -> HelloVerdict {
        let offer = hello.extensionValue(HelloExtension.Types.protection)
        guard let protection = configuration.protection else {
            guard offer != nil else { return .proceed }
            reportProtection(.peerHasKey)
            return .hold
        }
        guard let offer, offer.count >= 1 + LinkProtection.randomLength else {
            reportProtection(.peerHasNoKey)
            return .hold
        }
        let random = Array(offer[1...LinkProtection.randomLength])
        // Our own HELLO sent back to us: a reflection, never a peer.
        guard random != protectionState!.ourRandom else { return .hold }
        protectionState!.peerRandom = random
        protectionState!.candidateSession = hello.session
        let proofLength = LinkProtection.proofLength
        guard offer.count == 1 + LinkProtection.randomLength + proofLength,
              body.count > proofLength, body.suffix(proofLength).elementsEqual(offer.suffix(proofLength)) else {
            return .hold   // no proof yet: the peer has not seen our random
        }
        let signed = body.dropLast(proofLength)
        let proof = offer.suffix(proofLength)
        if constantTimeEqual(protection.proof(receiverRandom: protectionState!.ourRandom, body: signed), proof) {
            guard offer[offer.startIndex] == protection.mode.rawValue else {
                reportProtection(.differentMode(peer: LinkProtection.Mode(rawValue: offer[offer.startIndex]) ?? .encrypt))
                return .hold
            }
            return .proceed
        }
        if protectionState!.previousRandoms.contains(where: {
            constantTimeEqual(protection.proof(receiverRandom: $0, body: signed), proof)
        }) {
            return .hold   // proves an earlier random of ours: sent before it saw this one
        }
        // A HELLO that does not echo this end's session was made before the peer heard this
        // end at all (this end restarted, and it crossed on the line): its proof is over a
        // random this end never had. Only a peer that heard us and still fails has another key.
        guard hello.echo == session else { return .hold }
        // The proof could also be in the other mode with the same key: say which.
        for mode in LinkProtection.Mode.allCases where mode != protection.mode {
            var other = protection
            other.mode = mode
            if constantTimeEqual(other.proof(receiverRandom: protectionState!.ourRandom, body: signed), proof) {
                if !isEstablished { reportProtection(.differentMode(peer: mode)) }
                return .hold
            }
        }
        // On an established link a HELLO that proves nothing is a stranger's (or an injection),
        // not news about the peer: it is only held.
        if !isEstablished { reportProtection(.differentKey) }
        return .hold
    }

    /// The session is established with a peer that proved the key: seal from now on, and open
    /// only what the peer sealed for this session (§11.2).
    mutating func installSessionKeys() {
        guard let protection = configuration.protection, let p = protectionState, let peerRandom = p.peerRandom else { return }
        writer.sealer = FrameSealer(mode: protection.mode,
                                    key: protection.frameKey(senderRandom: p.ourRandom, receiverRandom: peerRandom))
        opener = FrameOpener(mode: protection.mode,
                             key: protection.frameKey(senderRandom: peerRandom, receiverRandom: p.ourRandom))
    }

    /// The session ended: its keys go, and the next session has a new random, so no key and
    /// nonce pair is ever used twice.
    mutating func retireSessionKeys() {
        writer.sealer = nil
        opener = nil
        guard let protection = configuration.protection, protectionState != nil else { return }
        protectionState!.previousRandoms = Array((protectionState!.previousRandoms + [protectionState!.ourRandom]).suffix(4))
        protectionState!.ourRandom = Self.freshRandom(protection)
        protectionState!.peerRandom = nil
        protectionState!.candidateSession = nil
    }

    /// Bytes sealing adds to each frame (§11.3).
    var sealOverhead: Int { configuration.protection == nil ? 0 : LinkProtection.frameOverhead }
}
