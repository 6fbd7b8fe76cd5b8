//! `limit` and `offset` of every list endpoint: default 100, at most 1000 rows per page.

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::query::QueryInteger;

pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1000;

/// The page parameters as the query string gives them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 100 unless given; values above 1000 are lowered to 1000.
    #[param(value_type = i64, minimum = 1, default = 100)]
    #[serde(default)]
    pub limit: Option<QueryInteger>,
    /// Rows to skip.
    #[param(value_type = i64, minimum = 0, default = 0)]
    #[serde(default)]
    pub offset: Option<QueryInteger>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub offset: u64,
}

impl Page {
    /// A `limit` above the maximum is lowered to it (a client asking for "everything" gets the
    /// largest page, not an error); zero or negative values are a 422.
    pub fn new(
        limit: Option<QueryInteger>,
        offset: Option<QueryInteger>,
    ) -> Result<Page, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(QueryInteger(value)) if value < 1 => {
                return Err(ApiError::validation(
                    "limit",
                    format!("must be between 1 and {MAX_LIMIT} (got {value})"),
                ))
            }
            Some(QueryInteger(value)) => (value as u64).min(MAX_LIMIT),
        };
        let offset = match offset {
            None => 0,
            Some(QueryInteger(value)) if value < 0 => {
                return Err(ApiError::validation(
                    "offset",
                    format!("must be 0 or more (got {value})"),
                ))
            }
            Some(QueryInteger(value)) => value as u64,
        };
        Ok(Page { limit, offset })
    }
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        Page::new(self.limit, self.offset)
    }

    /// The page with `limit` lowered to `max` instead of [`MAX_LIMIT`], for rows that are
    /// small and few enough to take more of at once (a chart's buckets).
    pub fn page_up_to(&self, max: u64) -> Result<Page, ApiError> {
        let page = self.page()?;
        let limit = match self.limit {
            Some(QueryInteger(value)) => (value as u64).min(max),
            None => page.limit,
        };
        Ok(Page { limit, ..page })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::query::parse_query;

    fn page(query: &str) -> Result<Page, ApiError> {
        parse_query::<PageQuery>(query)?.page()
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            page("").expect("default"),
            Page {
                limit: 100,
                offset: 0
            }
        );
        assert_eq!(page("limit=5000").expect("clamped").limit, 1000);
        assert_eq!(page("limit=7&offset=3").expect("given").offset, 3);
        assert!(page("limit=0").is_err());
        assert!(page("offset=-1").is_err());
        assert!(page("limit=ten").is_err());
        assert!(page("limit=1&limit=2").is_err());
        let larger = |query: &str| parse_query::<PageQuery>(query)?.page_up_to(10_000);
        assert_eq!(larger("limit=5000").expect("raised").limit, 5000);
        assert_eq!(larger("limit=20000").expect("clamped").limit, 10_000);
        assert_eq!(larger("").expect("default").limit, 100);
        assert!(larger("limit=0").is_err());
    }
}
