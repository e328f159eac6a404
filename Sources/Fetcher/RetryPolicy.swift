import Foundation

/// Bounded exponential backoff with jitter for one range.
public struct RetryPolicy: Sendable {
    /// Attempts in a row that make no progress before giving up.
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// Give up on a range after this long, however many attempts it took.
    public var totalBudget: Duration

    public init(maxAttempts: Int = 8, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(10), totalBudget: Duration = .seconds(300)) {
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.totalBudget = totalBudget
    }

    public static let `default` = RetryPolicy()

    /// "Equal jitter": half fixed, half random, so retries spread out but never fire at once.
    func delay(afterAttempt attempt: Int) -> Duration {
        let cap = min(maxBackoff, initialBackoff * (1 << min(attempt - 1, 20)))
        let half = cap / 2
        return half + half * Double.random(in: 0...1)
    }
}
