import ArgumentParser
public struct Socket2Ser: ParsableCommand {
    public init() {}
    public func run() throws {}
}
