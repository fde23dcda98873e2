//! Who may do what. Four roles (DESIGN §9): three nested reading/writing levels and one
//! write-only role for machines that ship metrics and logs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The role of a user or API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything except secrets and the admin areas.
    Viewer,
    /// A viewer that may also change rules, silences, checks and the like.
    Editor,
    /// Everything, including users, tokens, channels and the audit log.
    Admin,
    /// Write-only: may push metrics and logs and nothing else.
    Ingest,
}

/// What a route requires of the caller. Every route declares one; there is no default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Open to anyone, authenticated or not.
    Public,
    /// Any authenticated caller of any role.
    Authenticated,
    Viewer,
    Editor,
    Admin,
    /// Metric and log ingest: the ingest role, or editor and admin.
    Ingest,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected one of viewer, editor, admin, ingest")]
pub struct RoleError(pub String);

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Ingest];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Ingest => "ingest",
        }
    }

    /// Whether a caller with this role may use a route that requires `access`.
    pub fn permits(self, access: Access) -> bool {
        use Role::*;
        match access {
            Access::Public | Access::Authenticated => true,
            Access::Viewer => matches!(self, Viewer | Editor | Admin),
            Access::Editor => matches!(self, Editor | Admin),
            Access::Admin => self == Admin,
            Access::Ingest => matches!(self, Ingest | Editor | Admin),
        }
    }
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Authenticated => "authenticated",
            Access::Viewer => "viewer",
            Access::Editor => "editor",
            Access::Admin => "admin",
            Access::Ingest => "ingest",
        }
    }
}

impl FromStr for Access {
    type Err = RoleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "public" => Access::Public,
            "authenticated" => Access::Authenticated,
            "viewer" => Access::Viewer,
            "editor" => Access::Editor,
            "admin" => Access::Admin,
            "ingest" => Access::Ingest,
            other => return Err(RoleError(other.to_string())),
        })
    }
}

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == text).ok_or_else(|| RoleError(text.to_string()))
    }
}

impl TryFrom<String> for Role {
    type Error = RoleError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_role_cannot_read() {
        assert!(Role::Ingest.permits(Access::Ingest));
        assert!(!Role::Ingest.permits(Access::Viewer));
        assert!(!Role::Viewer.permits(Access::Ingest));
    }

    #[test]
    fn roles_nest() {
        assert!(Role::Admin.permits(Access::Editor));
        assert!(Role::Editor.permits(Access::Viewer));
        assert!(!Role::Editor.permits(Access::Admin));
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
