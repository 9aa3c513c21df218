//! Paging, sorting and filtering of collections, as Losant's list actions take them.

use serde_json::Value;

/// The columns a list may be sorted or filtered by. The API maps Losant's `sortField` and
/// `filterField` names onto these; each store maps them onto its own columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Id,
    Name,
    CreationDate,
    LastUpdated,
    Status,
    ExpirationDate,
    Version,
    /// Integrations: `integrationType`.
    Kind,
}

/// Sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

impl SortDirection {
    /// Losant's spelling (`asc`/`desc`).
    pub fn as_str(self) -> &'static str {
        match self {
            SortDirection::Asc => "asc",
            SortDirection::Desc => "desc",
        }
    }
}

/// One page of a collection.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub sort: Column,
    pub direction: SortDirection,
    /// 0-based.
    pub page: u64,
    pub per_page: u64,
    /// Keep only documents whose column matches a glob (`*` = any run of characters),
    /// case-insensitively.
    pub filter: Option<(Column, String)>,
    /// Flows only: keep one workflow class (`cloud`, `edge`, …).
    pub flow_class: Option<String>,
}

impl ListQuery {
    /// The whole collection on one page, by id (for work over every document, not for answers).
    pub fn all() -> ListQuery {
        ListQuery {
            sort: Column::Id,
            direction: SortDirection::Asc,
            page: 0,
            per_page: u64::MAX / 2,
            filter: None,
            flow_class: None,
        }
    }
}

/// A page of documents and the size of the whole (filtered) collection.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Value>,
    pub total_count: u64,
}
