//! Closed sets of words a service stores and a proto enum names, declared once: [`text_enum!`]
//! gives each its text form for SQL (`status = 'active'`), its proto form, and the conversions,
//! so no mapping is written twice.

/// Declares a domain enum whose variants are named as the proto enum's, stored as text:
///
/// ```ignore
/// crm_kit::text_enum! {
///     /// Where a program is in its life.
///     pub enum ProgramStatus: proto::ProgramStatus {
///         Draft = "draft",
///         Active = "active",
///         Closed = "closed",
///     }
/// }
/// ```
///
/// Rows read it straight from a `text` column (an unknown word is a decode error, never a guess),
/// binds write its text, and `from_proto` answers `None` for the proto's UNSPECIFIED or a number no
/// variant has.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $proto:ty {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            #[allow(unreachable_patterns)]
            pub fn from_proto(value: $proto) -> Option<Self> {
                match value {
                    $(<$proto>::$variant => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The proto enum's number of an `i32` field, when it names a variant.
            pub fn from_i32(value: i32) -> Option<Self> {
                <$proto>::try_from(value).ok().and_then(Self::from_proto)
            }

            pub fn to_proto(self) -> $proto {
                match self {
                    $($name::$variant => <$proto>::$variant),+
                }
            }

            /// Reads a required enum field: its variant, or a violation naming the values it may
            /// take (and the first variant as a placeholder: the request is refused anyway).
            pub fn require(
                value: i32,
                field: &str,
                violations: &mut $crate::error::FieldViolations,
            ) -> Self {
                Self::from_i32(value).unwrap_or_else(|| {
                    violations.add(field, format!("must be {}", Self::expected()));
                    Self::ALL[0]
                })
            }

            /// Reads an optional enum filter: `None` for the proto's UNSPECIFIED (0), else as
            /// [`Self::require`] does.
            pub fn optional(
                value: i32,
                field: &str,
                violations: &mut $crate::error::FieldViolations,
            ) -> Option<Self> {
                (value != 0).then(|| Self::require(value, field, violations))
            }

            /// The variants as callers write them, for error messages: `DRAFT, ACTIVE or CLOSED`.
            pub fn expected() -> String {
                $crate::enums::expected(&[$($text),+])
            }
        }

        impl $crate::enums::serde::Serialize for $name {
            fn serialize<S: $crate::enums::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::enums::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::enums::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as $crate::enums::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&text).ok_or_else(|| {
                    <D::Error as $crate::enums::serde::de::Error>::custom(format!(
                        "{text:?} is not one of {}",
                        Self::expected()
                    ))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::enums::sqlx::Type<$crate::enums::sqlx::Postgres> for $name {
            fn type_info() -> $crate::enums::sqlx::postgres::PgTypeInfo {
                <&str as $crate::enums::sqlx::Type<$crate::enums::sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &$crate::enums::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::enums::sqlx::Type<$crate::enums::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> $crate::enums::sqlx::Decode<'r, $crate::enums::sqlx::Postgres> for $name {
            fn decode(
                value: $crate::enums::sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, $crate::enums::sqlx::error::BoxDynError> {
                let text = <&str as $crate::enums::sqlx::Decode<$crate::enums::sqlx::Postgres>>::decode(value)?;
                Self::parse(text).ok_or_else(|| {
                    format!("{text:?} is not a {}", stringify!($name)).into()
                })
            }
        }

        impl $crate::enums::sqlx::Encode<'_, $crate::enums::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::enums::sqlx::postgres::PgArgumentBuffer,
            ) -> Result<$crate::enums::sqlx::encode::IsNull, $crate::enums::sqlx::error::BoxDynError> {
                <&str as $crate::enums::sqlx::Encode<$crate::enums::sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl $crate::enums::sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> $crate::enums::sqlx::postgres::PgTypeInfo {
                <&str as $crate::enums::sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
    };
}

#[doc(hidden)]
pub use serde;
#[doc(hidden)]
pub use sqlx;

/// `a, b or c` of the upper-case words.
#[doc(hidden)]
pub fn expected(words: &[&str]) -> String {
    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    match upper.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use crm_proto::crm::consent::v1::LegalBasis as Proto;

    crate::text_enum! {
        enum Basis: Proto {
            Consent = "consent",
            LegitimateInterest = "legitimate_interest",
        }
    }

    #[test]
    fn each_form_converts_both_ways() {
        for basis in Basis::ALL {
            assert_eq!(Basis::parse(basis.as_str()), Some(*basis));
            assert_eq!(Basis::from_proto(basis.to_proto()), Some(*basis));
        }
        assert_eq!(Basis::from_proto(Proto::Unspecified), None);
        assert_eq!(Basis::from_proto(Proto::Contract), None);
        assert_eq!(Basis::from_i32(9_999), None);
        assert_eq!(Basis::parse("nonsense"), None);

        // A filter: unspecified means none, a number that names no variant is refused.
        let mut v = crate::error::FieldViolations::new();
        assert_eq!(Basis::optional(0, "basis", &mut v), None);
        let consent = Basis::Consent.to_proto() as i32;
        assert_eq!(
            Basis::optional(consent, "basis", &mut v),
            Some(Basis::Consent)
        );
        assert!(v.is_empty());
        Basis::optional(9_999, "basis", &mut v);
        assert_eq!(v.fields().collect::<Vec<_>>(), ["basis"]);
        assert_eq!(Basis::expected(), "CONSENT or LEGITIMATE_INTEREST");
        let mut v = crate::error::FieldViolations::new();
        assert_eq!(
            Basis::require(Proto::LegitimateInterest as i32, "basis", &mut v),
            Basis::LegitimateInterest
        );
        assert!(v.is_empty());
        Basis::require(Proto::Contract as i32, "basis", &mut v);
        assert_eq!(
            v.to_string(),
            "basis: must be CONSENT or LEGITIMATE_INTEREST"
        );
    }
}
