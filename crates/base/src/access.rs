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
}
