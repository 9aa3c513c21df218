//! Authorization: which token scopes allow which API action.
//!
//! [`ACTIONS`] is the one table. Each row is an action as Losant's docs list it: the action's own
//! scope (`flow.get`, or `flow.log` for the log entries action), the wildcard of its resource
//! (`flow.*`) and the broad scopes that also allow it. The broad lists are copied from the
//! official client's docs, where every action names its scopes; read actions also accept the
//! `.read` variants, token management accepts neither `.read` nor `.bounded`.
//! [`allows`] is the only check; handlers never test scopes themselves.

/// Broad scopes that allow a read-only action on an application's resources.
const READ: &[&str] = &[
    "all.Application",
    "all.Application.bounded",
    "all.Application.read",
    "all.Organization",
    "all.Organization.bounded",
    "all.Organization.read",
    "all.User",
    "all.User.bounded",
    "all.User.read",
];

/// Broad scopes that allow a writing action on an application's resources.
const WRITE: &[&str] = &[
    "all.Application",
    "all.Application.bounded",
    "all.Organization",
    "all.Organization.bounded",
    "all.User",
    "all.User.bounded",
];

/// Broad scopes that allow creating, changing or deleting API tokens: never `.bounded` or `.read`.
const TOKEN_ADMIN: &[&str] = &["all.Application", "all.Organization", "all.User"];

/// `application.get` also accepts the CLI scopes.
const APPLICATION_READ: &[&str] = &[
    "all.Application",
    "all.Application.bounded",
    "all.Application.cli",
    "all.Application.read",
    "all.Organization",
    "all.Organization.bounded",
    "all.Organization.read",
    "all.User",
    "all.User.bounded",
    "all.User.cli",
    "all.User.read",
];

/// `application.patch` also accepts the CLI scopes.
const APPLICATION_WRITE: &[&str] = &[
    "all.Application",
    "all.Application.bounded",
    "all.Application.cli",
    "all.Organization",
    "all.Organization.bounded",
    "all.User",
    "all.User.bounded",
    "all.User.cli",
];

/// Listing applications is an organization- or user-level action: application tokens cannot.
const APPLICATIONS_READ: &[&str] = &[
    "all.Organization",
    "all.Organization.bounded",
    "all.Organization.read",
    "all.User",
    "all.User.bounded",
    "all.User.cli",
    "all.User.read",
    "only.Organization",
    "only.Organization.bounded",
    "only.Organization.read",
];

/// Creating applications is an organization- or user-level action.
const APPLICATIONS_WRITE: &[&str] = &[
    "all.Organization",
    "all.Organization.bounded",
    "all.User",
    "all.User.bounded",
    "only.Organization",
    "only.Organization.bounded",
];

/// One API action: its own scope, its resource's wildcard scope and the broad scopes allowing it.
#[derive(Debug)]
pub struct ActionRule {
    pub scope: &'static str,
    pub wildcard: &'static str,
    pub broad: &'static [&'static str],
}

macro_rules! actions {
    ($($variant:ident => $scope:literal, $wildcard:literal, $broad:ident;)*) => {
        /// Every action flowd serves that a token must be allowed to perform.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action { $($variant,)* }

        /// The action table (see the module docs).
        pub const ACTIONS: &[(Action, ActionRule)] = &[
            $((Action::$variant, ActionRule { scope: $scope, wildcard: $wildcard, broad: $broad }),)*
        ];

        impl Action {
            /// This action's row of the table.
            pub fn rule(self) -> &'static ActionRule {
                match self { $(Action::$variant => &ACTIONS[Action::$variant as usize].1,)* }
            }
        }
    };
}

actions! {
    ApplicationsGet => "applications.get", "applications.*", APPLICATIONS_READ;
    ApplicationsPost => "applications.post", "applications.*", APPLICATIONS_WRITE;
    ApplicationGet => "application.get", "application.*", APPLICATION_READ;
    ApplicationPatch => "application.patch", "application.*", APPLICATION_WRITE;
    ApplicationDelete => "application.delete", "application.*", WRITE;
    ApplicationApiTokensGet => "applicationApiTokens.get", "applicationApiTokens.*", READ;
    ApplicationApiTokensPost => "applicationApiTokens.post", "applicationApiTokens.*", TOKEN_ADMIN;
    ApplicationApiTokenGet => "applicationApiToken.get", "applicationApiToken.*", READ;
    ApplicationApiTokenPatch => "applicationApiToken.patch", "applicationApiToken.*", TOKEN_ADMIN;
    ApplicationApiTokenDelete => "applicationApiToken.delete", "applicationApiToken.*", TOKEN_ADMIN;
    FlowsGet => "flows.get", "flows.*", READ;
    FlowsPost => "flows.post", "flows.*", WRITE;
    FlowsImport => "flows.import", "flows.*", WRITE;
    FlowGet => "flow.get", "flow.*", READ;
    FlowPatch => "flow.patch", "flow.*", WRITE;
    FlowDelete => "flow.delete", "flow.*", WRITE;
    FlowGetStorageEntries => "flow.getStorageEntries", "flow.*", READ;
    FlowGetStorageEntriesMetadata => "flow.getStorageEntriesMetadata", "flow.*", READ;
    FlowSetStorageEntry => "flow.setStorageEntry", "flow.*", WRITE;
    FlowClearStorageEntries => "flow.clearStorageEntries", "flow.*", WRITE;
    FlowPressVirtualButton => "flow.pressVirtualButton", "flow.*", WRITE;
    FlowErrors => "flow.errors", "flow.*", READ;
    FlowLog => "flow.log", "flow.*", READ;
    FlowStats => "flow.stats", "flow.*", READ;
    FlowDebug => "flow.debug", "flow.*", READ;
    FlowVersionsGet => "flowVersions.get", "flowVersions.*", READ;
    FlowVersionsPost => "flowVersions.post", "flowVersions.*", WRITE;
    FlowVersionsDelete => "flowVersions.delete", "flowVersions.*", WRITE;
    FlowVersionGet => "flowVersion.get", "flowVersion.*", READ;
    FlowVersionPatch => "flowVersion.patch", "flowVersion.*", WRITE;
    FlowVersionDelete => "flowVersion.delete", "flowVersion.*", WRITE;
    FlowVersionErrors => "flowVersion.errors", "flowVersion.*", READ;
    FlowVersionLog => "flowVersion.log", "flowVersion.*", READ;
    FlowVersionStats => "flowVersion.stats", "flowVersion.*", READ;
    IntegrationsGet => "integrations.get", "integrations.*", READ;
    IntegrationsPost => "integrations.post", "integrations.*", WRITE;
    IntegrationGet => "integration.get", "integration.*", READ;
    IntegrationPatch => "integration.patch", "integration.*", WRITE;
    IntegrationDelete => "integration.delete", "integration.*", WRITE;
    WebhooksGet => "webhooks.get", "webhooks.*", READ;
    WebhooksPost => "webhooks.post", "webhooks.*", WRITE;
    WebhookGet => "webhook.get", "webhook.*", READ;
    WebhookPatch => "webhook.patch", "webhook.*", WRITE;
    WebhookDelete => "webhook.delete", "webhook.*", WRITE;
}

/// Whether a token holding `scopes` may perform `action`.
pub fn allows<S: AsRef<str>>(scopes: &[S], action: Action) -> bool {
    let rule = action.rule();
    scopes
        .iter()
        .map(AsRef::as_ref)
        .any(|held| held == rule.scope || held == rule.wildcard || rule.broad.contains(&held))
}

/// The scope given to the owner token made at first start.
pub const OWNER_SCOPE: &str = "all.User";

/// Scopes an application token may hold: the enum of Losant's `applicationApiTokenPost` schema,
/// read from the embedded schema so the vocabulary has one source.
pub fn application_token_vocabulary() -> &'static [String] {
    use std::sync::OnceLock;
    static VOCABULARY: OnceLock<Vec<String>> = OnceLock::new();
    VOCABULARY.get_or_init(|| {
        crate::schema::raw(crate::schema::SchemaName::ApplicationApiTokenPost)
            .pointer("/properties/scope/items/enum")
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_in_enum_order() {
        for (i, (action, _)) in ACTIONS.iter().enumerate() {
            assert_eq!(*action as usize, i, "{action:?} is out of place");
        }
    }

    #[test]
    fn read_scopes_allow_reads_only() {
        assert!(allows(&["all.Application.read"], Action::FlowGet));
        assert!(allows(&["all.User.read"], Action::FlowGetStorageEntries));
        assert!(!allows(&["all.Application.read"], Action::FlowPatch));
        assert!(!allows(
            &["all.Application.read"],
            Action::FlowSetStorageEntry
        ));
    }

    #[test]
    fn bounded_scopes_cannot_manage_tokens() {
        assert!(allows(&["all.Application.bounded"], Action::FlowPatch));
        assert!(allows(
            &["all.Application.bounded"],
            Action::ApplicationApiTokensGet
        ));
        assert!(!allows(
            &["all.Application.bounded"],
            Action::ApplicationApiTokensPost
        ));
        assert!(!allows(
            &["all.Application.bounded"],
            Action::ApplicationApiTokenPatch
        ));
        assert!(!allows(
            &["all.Application.read"],
            Action::ApplicationApiTokenDelete
        ));
        assert!(allows(
            &["all.Application"],
            Action::ApplicationApiTokensPost
        ));
    }

    #[test]
    fn specific_and_wildcard_scopes() {
        assert!(allows(&["flow.get"], Action::FlowGet));
        assert!(!allows(&["flow.get"], Action::FlowPatch));
        assert!(allows(&["flow.*"], Action::FlowSetStorageEntry));
        assert!(!allows(&["flow.*"], Action::FlowsGet));
        assert!(allows(&["flows.*"], Action::FlowsImport));
        assert!(!allows(&["flowVersion.*"], Action::FlowVersionsPost));
        assert!(!allows::<&str>(&[], Action::FlowGet));
    }

    #[test]
    fn run_history_and_presses() {
        assert!(allows(&["flow.log"], Action::FlowLog));
        assert!(allows(&["all.Application.read"], Action::FlowStats));
        assert!(!allows(
            &["all.Application.read"],
            Action::FlowPressVirtualButton
        ));
        assert!(allows(
            &["flow.pressVirtualButton"],
            Action::FlowPressVirtualButton
        ));
        assert!(allows(&["flowVersion.*"], Action::FlowVersionErrors));
        assert!(allows(&["flow.debug"], Action::FlowDebug));
        assert!(!allows(&["flow.get"], Action::FlowDebug));
    }

    #[test]
    fn application_tokens_cannot_list_applications() {
        assert!(!allows(&["all.Application"], Action::ApplicationsGet));
        assert!(allows(&["all.User"], Action::ApplicationsGet));
        assert!(allows(&["all.Application"], Action::ApplicationGet));
    }

    #[test]
    fn vocabulary_comes_from_the_schema() {
        let vocabulary = application_token_vocabulary();
        assert!(vocabulary.iter().any(|s| s == "flow.getStorageEntries"));
        assert!(vocabulary.iter().any(|s| s == "all.Application.read"));
        assert!(!vocabulary.iter().any(|s| s == "all.User"));
    }
}
