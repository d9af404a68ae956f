//! The per-evaluation scope: the identity, its traits coerced once into the snapshot's slot table, and
//! the identity key (materialised only if a condition reads `$.identity.key`).

use std::cell::OnceCell;

use crate::condition::{Slot, Val};
use crate::{Identity, Snapshot};

/// The identity key as pieces hashed as if concatenated: the explicit key, or
/// `<environment key>_<identifier>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPieces<'a> {
    parts: [&'a str; 3],
    len: usize,
}

impl<'a> KeyPieces<'a> {
    pub(crate) fn pieces(&self) -> &[&'a str] {
        &self.parts[..self.len]
    }
}

/// Identity key pieces for `identity` in an environment keyed `environment_key`.
pub(crate) fn key_pieces<'a>(environment_key: &'a str, identity: &Identity<'a>) -> KeyPieces<'a> {
    match identity.key {
        Some(key) if !key.is_empty() => KeyPieces {
            parts: [key, "", ""],
            len: 1,
        },
        _ => KeyPieces {
            parts: [environment_key, "_", identity.identifier],
            len: 3,
        },
    }
}

pub(crate) struct Scope<'a> {
    snapshot: &'a Snapshot,
    identity: Option<Identity<'a>>,
    key: Option<KeyPieces<'a>>,
    slots: Vec<Option<Val<'a>>>,
    key_text: OnceCell<String>,
    json: OnceCell<serde_json::Value>,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, identity: Option<&Identity<'a>>) -> Scope<'a> {
        let identity = identity.copied();
        let mut slots = Vec::new();
        if let Some(identity) = identity
            && snapshot.slot_count() > 0
        {
            slots.resize(snapshot.slot_count(), None);
            for (name, value) in identity.traits.iter() {
                if let Some(slot) = snapshot.slot_of(name) {
                    slots[slot as usize] = Val::from_value(value);
                }
            }
        }
        Scope {
            snapshot,
            identity,
            key: identity.map(|i| key_pieces(snapshot.environment_key(), &i)),
            slots,
            key_text: OnceCell::new(),
            json: OnceCell::new(),
        }
    }

    pub(crate) fn trait_value(&self, slot: Slot) -> Option<Val<'_>> {
        self.slots.get(slot as usize).cloned().flatten()
    }

    pub(crate) fn identity_key(&self) -> Option<KeyPieces<'a>> {
        self.key
    }

    pub(crate) fn identifier(&self) -> Option<&'a str> {
        self.identity.map(|i| i.identifier)
    }

    /// The enriched identity key as one string.
    pub(crate) fn identity_key_text(&self) -> Option<&str> {
        let key = self.key?;
        Some(self.key_text.get_or_init(|| key.pieces().concat()))
    }

    pub(crate) fn environment_key(&self) -> &'a str {
        self.snapshot.environment_key()
    }

    pub(crate) fn environment_name(&self) -> &'a str {
        self.snapshot.environment_name()
    }

    /// The context as JSON, for JSONPaths that are not resolved directly. It holds `environment` and
    /// `identity` (with the enriched key); segments and features are not part of it.
    pub(crate) fn json_context(&self) -> &serde_json::Value {
        self.json.get_or_init(|| {
            let identity = match &self.identity {
                None => serde_json::Value::Null,
                Some(identity) => {
                    let traits: serde_json::Map<String, serde_json::Value> = identity
                        .traits
                        .iter()
                        .map(|(k, v)| {
                            (
                                (*k).to_owned(),
                                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                            )
                        })
                        .collect();
                    serde_json::json!({
                        "identifier": identity.identifier,
                        "key": self.identity_key_text(),
                        "traits": traits,
                    })
                }
            };
            serde_json::json!({
                "environment": {
                    "key": self.environment_key(),
                    "name": self.environment_name(),
                },
                "identity": identity,
            })
        })
    }
}
