#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LinkCore
import NIOCore

// MARK: - Clock

extension EventLoop {
    /// The loop's own clock (`EventLoop.now`) as the core's `LinkTime`. The shell reads time only
    /// here: a deadline from `Link.nextDeadline` then maps onto the `NIODeadline` the loop
    /// schedules with exactly, and on NIO's `EmbeddedEventLoop` time is virtual
    /// (`advanceTime(by:)`), so handlers and the driver can be tested deterministically.
    var linkNow: LinkTime { LinkTime(loop: now) }
}

extension LinkTime {
    init(loop deadline: NIODeadline) {
        self.init(nanoseconds: Int64(clamping: deadline.uptimeNanoseconds))
    }
}

extension NIODeadline {
    init(_ time: LinkTime) {
        self = .uptimeNanoseconds(UInt64(max(0, time.nanoseconds)))
    }
}

// MARK: - Descriptors

/// close(2), for a descriptor NIO did not take after all.
@discardableResult
func closeDescriptor(_ fd: CInt) -> CInt {
    close(fd)
}

/// Raises the soft limit on open descriptors to the hard limit: every forwarded connection costs
/// one, and a C end with a few thousand streams would otherwise hit the usual soft limit of 1024.
/// Returns the new soft limit, or nil if it could not be read.
@discardableResult
public func raiseOpenFileLimit() -> UInt64? {
    guard var limit = openFileLimits() else { return nil }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        if setrlimit(openFileResource, &limit) == 0 { return UInt64(limit.rlim_cur) }
    }
    return openFileLimit()
}

/// The soft limit on open descriptors, or nil if it cannot be read.
func openFileLimit() -> UInt64? {
    openFileLimits().map { UInt64($0.rlim_cur) }
}

#if canImport(Glibc)
private let openFileResource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#else
private let openFileResource = RLIMIT_NOFILE
#endif

/// The soft and hard limits on open descriptors.
private func openFileLimits() -> rlimit? {
    var limit = rlimit()
    return getrlimit(openFileResource, &limit) == 0 ? limit : nil
}


// MARK: - Trace output

/// Hex dump for trace logs, cut at `limit` bytes.
func hexDump<C: Collection>(_ bytes: C, limit: Int = 512) -> String where C.Element == UInt8 {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(min(bytes.count, limit) * 3)
    for (i, b) in bytes.prefix(limit).enumerated() {
        if i > 0 { text.append(" ") }
        text.append(digits[Int(b >> 4)])
        text.append(digits[Int(b & 0xF)])
    }
    if bytes.count > limit { text += " …(+\(bytes.count - limit))" }
    return text
}

// MARK: - Name lookup

/// getaddrinfo for TCP, any address family: calls `body` with each entry, in the resolver's
/// order, until it returns false. Returns getaddrinfo's status (0 when the name resolved), for
/// `gai_strerror`. One copy of the lookup for the forwarder's policy and `socket2ser connect`.
@discardableResult
public func forEachStreamAddress(host: String, port: Int? = nil, _ body: (addrinfo) -> Bool) -> Int32 {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    #if canImport(Glibc)
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    #else
    hints.ai_socktype = SOCK_STREAM
    #endif
    var list: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, port.map(String.init), &hints, &list)
    guard status == 0 else { return status }
    defer { freeaddrinfo(list) }
    var entry = list
    while let info = entry {
        entry = info.pointee.ai_next
        if !body(info.pointee) { break }
    }
    return 0
}
