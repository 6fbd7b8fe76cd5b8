//! `limit` and `offset` of every list endpoint: default 100, at most 1000 rows per page.

use super::error::ApiError;
use super::extract::QueryParams;

pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub offset: u64,
}

impl Page {
    /// A `limit` above the maximum is lowered to it (a client asking for "everything" gets the
    /// largest page, not an error); zero, negative or non-numeric values are a 422.
    pub fn from_params(params: &QueryParams) -> Result<Page, ApiError> {
        let limit = match params.integer("limit")? {
            None => DEFAULT_LIMIT,
            Some(value) if value < 1 => {
                return Err(ApiError::validation(
                    "limit",
                    format!("must be between 1 and {MAX_LIMIT} (got {value})"),
                ))
            }
            Some(value) => (value as u64).min(MAX_LIMIT),
        };
        let offset = match params.integer("offset")? {
            None => 0,
            Some(value) if value < 0 => {
                return Err(ApiError::validation(
                    "offset",
                    format!("must be 0 or more (got {value})"),
                ))
            }
            Some(value) => value as u64,
        };
        Ok(Page { limit, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(query: &str) -> Result<Page, ApiError> {
        Page::from_params(&QueryParams::parse(query).expect("query"))
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
    }
}
