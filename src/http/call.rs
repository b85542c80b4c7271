//! One request as every handler sees it. Its own module, so handlers and
//! the route table that names them do not import each other.

use std::net::IpAddr;

use crate::httpwire::Head;

/// One request as a handler sees it: the head, the path parameters, the
/// body (already read within its cap) and who is calling.
pub struct Call<'a> {
    pub head: &'a Head,
    pub path: &'a str,
    pub query: &'a str,
    pub params: Vec<&'a str>,
    pub body: Vec<u8>,
    pub peer: IpAddr,
    pub request_id: &'a str,
}

impl Call<'_> {
    /// Path parameter `i` (the route's pattern guarantees it exists).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).copied().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}
