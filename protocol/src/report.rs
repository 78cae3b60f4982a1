//! Errors as people read them, the same in the page and the terminal.

/// An error and its sources on one line. libp2p's errors keep the useful
/// part in their sources: a refused reservation displays as "Failed to get
/// Reservation." and only its last source says `PERMISSION_DENIED`.
pub fn describe_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        // Some errors repeat their source in their own message.
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// What a relay's refusal of a reservation means, when its status (as
/// [`describe_error`] shows it) is one a person can act on.
pub fn reservation_refusal_hint(description: &str) -> Option<&'static str> {
    if description.contains("PERMISSION_DENIED") {
        Some(
            "this relay is private: only the peers listed in its authorized peers file may reserve",
        )
    } else if description.contains("resource limit exceeded")
        || description.contains("RESOURCE_LIMIT_EXCEEDED")
    {
        Some("the relay is at its reservation limit, or this address asked too often")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Failed to get Reservation.")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("Protocol error")]
    struct Middle(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("Unexpected message status 'PERMISSION_DENIED'")]
    struct Inner;

    #[test]
    fn the_whole_chain_is_described_and_a_refusal_explained() {
        let description = describe_error(&Outer(Middle(Inner)));
        assert_eq!(
            description,
            "Failed to get Reservation.: Protocol error: Unexpected message status 'PERMISSION_DENIED'"
        );
        assert!(
            reservation_refusal_hint(&description).is_some_and(|hint| hint.contains("private"))
        );
        assert_eq!(reservation_refusal_hint("connection reset"), None);
    }
}
