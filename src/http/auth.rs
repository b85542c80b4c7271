//! Who is calling: the token's name and scope.

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Booking,
    Admin,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (safe to log; the token never is).
    pub name: String,
    pub scope: Scope,
}
