//! The readings' three columns as PostgreSQL binary arrays, written in one pass each.
//!
//! sqlx writes an array element by element through its general encoder (a length slot patched
//! after every element, a chrono duration computed for every timestamp): about 190
//! instructions per element, a tenth of the service's work per message. These columns have a
//! fixed width and no nulls, so an array is a header and then (length, value) pairs; the bytes
//! are the same as sqlx's, which the tests below check.

use chrono::{DateTime, Utc};
use sea_orm::sqlx::encode::IsNull;
use sea_orm::sqlx::error::BoxDynError;
use sea_orm::sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, Postgres};
use sea_orm::sqlx::{Encode, Type};

/// A one-dimensional array without nulls, for binding with `sqlx::query(..).bind(..)`.
pub struct PostgresArray<'a, T>(pub &'a [T]);

/// An element type PostgreSQL stores in a fixed number of bytes.
pub trait FixedWidth {
    /// The element type's object id; built-in types have fixed ones.
    const ELEMENT_OID: u32;
    const WIDTH: usize;
    /// The array type, as sqlx names it.
    fn array_type() -> PgTypeInfo;
    fn write(&self, buffer: &mut Vec<u8>);
}

impl FixedWidth for i32 {
    const ELEMENT_OID: u32 = 23;
    const WIDTH: usize = 4;
    fn array_type() -> PgTypeInfo {
        <Vec<i32> as Type<Postgres>>::type_info()
    }
    fn write(&self, buffer: &mut Vec<u8>) {
        buffer.extend_from_slice(&self.to_be_bytes());
    }
}

impl FixedWidth for f64 {
    const ELEMENT_OID: u32 = 701;
    const WIDTH: usize = 8;
    fn array_type() -> PgTypeInfo {
        <Vec<f64> as Type<Postgres>>::type_info()
    }
    fn write(&self, buffer: &mut Vec<u8>) {
        buffer.extend_from_slice(&self.to_be_bytes());
    }
}

/// Seconds between the Unix epoch and PostgreSQL's, 2000-01-01 00:00:00 UTC.
const POSTGRES_EPOCH_SECONDS: i64 = 946_684_800;

impl FixedWidth for DateTime<Utc> {
    const ELEMENT_OID: u32 = 1184;
    const WIDTH: usize = 8;
    fn array_type() -> PgTypeInfo {
        <Vec<DateTime<Utc>> as Type<Postgres>>::type_info()
    }
    /// `timestamptz` travels as microseconds since PostgreSQL's epoch, rounded toward zero as
    /// sqlx rounds them. chrono's whole range fits; PostgreSQL refuses what lies beyond its own
    /// range, as it would from sqlx's encoder.
    fn write(&self, buffer: &mut Vec<u8>) {
        let nanos = i64::from(self.timestamp_subsec_nanos());
        let mut micros = (self.timestamp() - POSTGRES_EPOCH_SECONDS) * 1_000_000 + nanos / 1000;
        // That was the floor; before 2000 with a fraction of a microsecond left, toward zero is
        // one more.
        if micros < 0 && nanos % 1000 != 0 {
            micros += 1;
        }
        buffer.extend_from_slice(&micros.to_be_bytes());
    }
}

impl<T: FixedWidth> Type<Postgres> for PostgresArray<'_, T> {
    fn type_info() -> PgTypeInfo {
        T::array_type()
    }
}

impl<T: FixedWidth> Encode<'_, Postgres> for PostgresArray<'_, T> {
    fn encode_by_ref(&self, buffer: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let length = i32::try_from(self.0.len())
            .map_err(|_| format!("{} elements are too many for one array", self.0.len()))?;
        let width = i32::try_from(T::WIDTH).map_err(|_| "element too wide")?;
        let bytes: &mut Vec<u8> = buffer;
        bytes.reserve(20 + self.0.len() * (4 + T::WIDTH));
        bytes.extend_from_slice(&1_i32.to_be_bytes()); // dimensions
        bytes.extend_from_slice(&0_i32.to_be_bytes()); // no nulls
        bytes.extend_from_slice(&T::ELEMENT_OID.to_be_bytes());
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&1_i32.to_be_bytes()); // lower bound
        for element in self.0 {
            bytes.extend_from_slice(&width.to_be_bytes());
            element.write(bytes);
        }
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        20 + self.0.len() * (4 + T::WIDTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The bytes sqlx's own encoder writes for `values`.
    fn by_sqlx<T>(values: &[T]) -> Vec<u8>
    where
        for<'a> &'a [T]: Encode<'a, Postgres>,
    {
        let mut buffer = PgArgumentBuffer::default();
        let _ = Encode::<Postgres>::encode_by_ref(&values, &mut buffer).expect("sqlx encodes");
        buffer.to_vec()
    }

    fn by_us<T: FixedWidth>(values: &[T]) -> Vec<u8> {
        let mut buffer = PgArgumentBuffer::default();
        let _ = PostgresArray(values)
            .encode_by_ref(&mut buffer)
            .expect("encodes");
        buffer.to_vec()
    }

    #[test]
    fn integers_are_written_as_sqlx_writes_them() {
        for values in [vec![], vec![1], vec![i32::MIN, -1, 0, 7, i32::MAX]] {
            assert_eq!(by_us(&values), by_sqlx(&values), "{values:?}");
        }
    }

    #[test]
    fn floats_are_written_as_sqlx_writes_them() {
        let values = [0.0, -0.0, 21.5, -1e300, f64::MIN_POSITIVE, f64::MAX];
        assert_eq!(by_us(&values), by_sqlx(&values));
    }

    #[test]
    fn times_are_written_as_sqlx_writes_them() {
        let values = [
            Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.timestamp_opt(1_764_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(-1, 999_999_000).unwrap(),
            Utc.timestamp_opt(-5, 123_456_789).unwrap(),
            Utc.timestamp_opt(946_684_799, 999_999_500).unwrap(),
            Utc.timestamp_opt(946_684_800, 500).unwrap(),
        ];
        assert_eq!(by_us(&values), by_sqlx(&values));
    }

    #[test]
    fn the_array_types_are_sqlx_s() {
        assert_eq!(
            <PostgresArray<'_, i32> as Type<Postgres>>::type_info(),
            <Vec<i32> as Type<Postgres>>::type_info()
        );
        assert_eq!(
            <PostgresArray<'_, DateTime<Utc>> as Type<Postgres>>::type_info(),
            <Vec<DateTime<Utc>> as Type<Postgres>>::type_info()
        );
    }
}
