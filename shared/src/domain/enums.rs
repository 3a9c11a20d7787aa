//! The standardized enumerations of the contract (§4). Parsing is forgiving about case, spaces, underscores
//! and hyphens ("cold call", "Cold_Call" and "COLD CALL" are all `Cold Call`); storage and output use the
//! canonical spelling.

/// Defines an enumeration stored as text, with its canonical spellings.
macro_rules! text_enum {
    // `$text:tt`, not `:literal`: a `literal` fragment reaches derive macros wrapped in an invisible group, which
    // serde reads but utoipa does not (the OpenAPI document then showed `ColdCall` where the API says `Cold Call`).
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Matches case-insensitively, ignoring spaces, underscores and hyphens.
            pub fn parse(input: &str) -> Option<Self> {
                let wanted = $crate::domain::enums::fold(input);
                Self::ALL.iter().copied().find(|value| $crate::domain::enums::fold(value.as_str()) == wanted)
            }

            /// The allowed values, for error messages.
            pub fn allowed() -> String {
                Self::ALL.iter().map(|value| value.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) fn fold(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, ' ' | '_' | '-' | '\t')).flat_map(char::to_lowercase).collect()
}

text_enum!(
    /// What a user may do (contract §3).
    Role { Admin => "admin", Manager => "manager", Sales => "sales", Support => "support", Readonly => "readonly" }
);
text_enum!(LeadStatus {
    New => "new",
    Contacted => "contacted",
    Qualified => "qualified",
    Lost => "lost",
    Converted => "converted",
});
text_enum!(LeadSource {
    Website => "Website",
    Referral => "Referral",
    ColdCall => "Cold Call",
    EmailCampaign => "Email Campaign",
    SocialMedia => "Social Media",
    TradeShow => "Trade Show",
    Advertisement => "Advertisement",
    Partner => "Partner",
    Other => "Other",
});
text_enum!(ClientStatus { New => "new", Prospect => "prospect", Active => "active", Inactive => "inactive" });
text_enum!(
    /// `completed` is a won project, `cancelled` a lost one.
    ProjectStatus { Active => "active", Pending => "pending", Completed => "completed", Cancelled => "cancelled" }
);
text_enum!(InteractionType {
    Call => "call",
    Meeting => "meeting",
    Email => "email",
    FollowUp => "follow_up",
    Note => "note",
});
text_enum!(TicketCategory { Bug => "bug", Feature => "feature", Question => "question", Other => "other" });
text_enum!(TicketPriority { Low => "low", Medium => "medium", High => "high", Urgent => "urgent" });
text_enum!(TicketStatus { Open => "open", InProgress => "in_progress", Resolved => "resolved", Closed => "closed" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_schema_lists_the_values_the_api_writes() {
        let schema = serde_json::to_value(<LeadSource as utoipa::PartialSchema>::schema()).expect("schema");
        let values: Vec<&str> =
            schema["enum"].as_array().expect("an enumeration").iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(values, LeadSource::ALL.iter().map(|value| value.as_str()).collect::<Vec<_>>(), "{schema}");
        let schema = serde_json::to_value(<Role as utoipa::PartialSchema>::schema()).expect("schema");
        assert_eq!(schema["enum"][0], "admin", "{schema}");
    }

    #[test]
    fn parsing_ignores_case_spacing_and_separators() {
        assert_eq!(LeadSource::parse("cold call"), Some(LeadSource::ColdCall));
        assert_eq!(LeadSource::parse(" COLD_CALL "), Some(LeadSource::ColdCall));
        assert_eq!(LeadSource::parse("trade-show"), Some(LeadSource::TradeShow));
        assert_eq!(TicketStatus::parse("In Progress"), Some(TicketStatus::InProgress));
        assert_eq!(LeadStatus::parse("Qualified"), Some(LeadStatus::Qualified));
        assert_eq!(LeadStatus::parse("won"), None);
        assert_eq!(Role::parse(""), None);
    }

    #[test]
    fn canonical_spelling_round_trips() {
        for source in LeadSource::ALL {
            assert_eq!(LeadSource::parse(source.as_str()), Some(*source));
        }
        assert_eq!(serde_json::to_string(&LeadSource::EmailCampaign).ok().as_deref(), Some("\"Email Campaign\""));
        assert_eq!(LeadStatus::allowed(), "new, contacted, qualified, lost, converted");
    }
}
