//! Who may watch a recording (docs/http-contract.md, "Private recordings,
//! share links, encryption, TLS"). How a private one is opened (share
//! tokens, upload tokens, the publish key) is decided above; this is the
//! stored choice every layer reads.

use serde::{Deserialize, Serialize};

/// Who may watch a recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone who knows the id (v1 behaviour).
    #[default]
    Public,
    /// Only with a share token, the upload token or the publish key.
    Private,
}

impl Access {
    pub fn is_private(self) -> bool {
        self == Self::Private
    }

    /// As stored and as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

impl std::str::FromStr for Access {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Public, Self::Private]
            .into_iter()
            .find(|access| access.as_str() == s)
            .ok_or_else(|| format!("unknown access '{s}' (public or private)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reads_back_what_it_writes() {
        for access in [Access::Public, Access::Private] {
            assert_eq!(access.as_str().parse::<Access>(), Ok(access));
            let json = serde_json::to_string(&access).unwrap();
            assert_eq!(json, format!("\"{}\"", access.as_str()));
        }
        assert!("secret".parse::<Access>().is_err());
    }
}
