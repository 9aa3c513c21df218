//! Losant's list parameters (`sortField`, `sortDirection`, `page`, `perPage`, `filterField`,
//! `filter`) and the list envelope (`items`, `count`, `totalCount`, …), shared by every
//! collection.

use crate::error::ApiResult;
use crate::request::Params;
use flowd_store::{Column, ListQuery, Page, SortDirection};
use serde_json::{json, Value};

/// Largest `perPage` accepted (Losant's own limit).
pub const MAX_PER_PAGE: u64 = 1000;

/// What a collection may be sorted and filtered by: Losant's field names and the store columns.
pub struct ListSpec {
    pub sort_fields: &'static [(&'static str, Column)],
    pub default_sort: &'static str,
    pub filter_fields: &'static [(&'static str, Column)],
}

/// The parsed list parameters, with the names to echo back.
pub struct ListParams {
    pub query: ListQuery,
    pub sort_field: &'static str,
    pub filter_field: Option<&'static str>,
    pub filter: Option<String>,
}

fn names(fields: &[(&'static str, Column)]) -> Vec<&'static str> {
    fields.iter().map(|(n, _)| *n).collect()
}

impl ListSpec {
    pub fn parse(&self, params: &Params) -> ApiResult<ListParams> {
        let sort_names = names(self.sort_fields);
        let sort_field = params.one_of("sortField", &sort_names, self.default_sort)?;
        let sort = self
            .sort_fields
            .iter()
            .find(|(n, _)| *n == sort_field)
            .map(|(_, c)| *c)
            .unwrap_or(Column::Name);
        let direction =
            match params.one_of("sortDirection", &["asc", "desc", "ASC", "DESC"], "asc")? {
                "desc" | "DESC" => SortDirection::Desc,
                _ => SortDirection::Asc,
            };
        let page = params.uint("page", 0, u32::MAX as u64)?;
        let per_page = params.uint("perPage", 100, MAX_PER_PAGE)?;
        if per_page == 0 {
            return Err(crate::error::ApiError::validation(format!(
                "perPage must be from 1 to {MAX_PER_PAGE}"
            )));
        }
        let filter = params.get("filter").map(str::to_owned);
        let filter_field = match params.get("filterField") {
            None => None,
            Some(_) => {
                let filter_names = names(self.filter_fields);
                Some(params.one_of("filterField", &filter_names, "")?)
            }
        };
        // Losant filters on the first filter field when only `filter` is given.
        let effective_field = filter_field.or(filter.as_ref().map(|_| self.filter_fields[0].0));
        let filter_column = effective_field.and_then(|name| {
            self.filter_fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| *c)
        });
        Ok(ListParams {
            query: ListQuery {
                sort,
                direction,
                page,
                per_page,
                filter: filter_column.zip(filter.clone()),
                flow_class: None,
            },
            sort_field,
            filter_field: effective_field,
            filter,
        })
    }
}

impl ListParams {
    /// One page of documents already selected and sorted in memory (advanced queries).
    pub fn page_of(&self, selected: Vec<Value>) -> Page {
        let total_count = selected.len() as u64;
        let start = self
            .query
            .page
            .saturating_mul(self.query.per_page)
            .min(total_count) as usize;
        let items = selected
            .into_iter()
            .skip(start)
            .take(self.query.per_page.min(MAX_PER_PAGE) as usize)
            .collect();
        Page { items, total_count }
    }

    /// The list envelope around already-decorated items.
    pub fn envelope(&self, page: Page, items: Vec<Value>) -> Value {
        let mut out = json!({
            "items": items,
            "count": page.items.len(),
            "totalCount": page.total_count,
            "perPage": self.query.per_page,
            "page": self.query.page,
            "sortField": self.sort_field,
            "sortDirection": self.query.direction.as_str(),
        });
        if let (Some(field), Some(filter)) = (self.filter_field, &self.filter) {
            out["filterField"] = json!(field);
            out["filter"] = json!(filter);
        }
        out
    }
}
