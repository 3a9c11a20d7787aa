//! Typed identifiers: a `TenantId` cannot be passed where a record id is expected, and every tenant-owned
//! repository function takes one first.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// The tenant every tenant-owned row belongs to.
    TenantId
);
id_type!(
    /// A user of one tenant.
    UserId
);

/// New primary keys are UUIDv7: time-ordered, so inserts stay at the right edge of the B-tree.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
