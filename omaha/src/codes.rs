//! Event types, results and error codes, numbered as update_engine numbers them
//! (`omaha_request_action.h`, `action_processor.h`) and as Nebraska reads them
//! (`backend/pkg/api/events.go`).

/// `<event eventtype=…>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// 3: the update finished (result 1 installed, 2 rebooted into it, 0 failed).
    UpdateComplete,
    /// 13: the download started.
    UpdateDownloadStarted,
    /// 14: the download finished.
    UpdateDownloadFinished,
    /// 800: installed (Nebraska's; update_engine sends 3/1 instead).
    UpdateInstalled,
    Other(u32),
}

impl EventType {
    pub fn code(self) -> u32 {
        match self {
            EventType::UpdateComplete => 3,
            EventType::UpdateDownloadStarted => 13,
            EventType::UpdateDownloadFinished => 14,
            EventType::UpdateInstalled => 800,
            EventType::Other(n) => n,
        }
    }

    pub fn from_code(n: u32) -> EventType {
        match n {
            3 => EventType::UpdateComplete,
            13 => EventType::UpdateDownloadStarted,
            14 => EventType::UpdateDownloadFinished,
            800 => EventType::UpdateInstalled,
            n => EventType::Other(n),
        }
    }
}

/// `<event eventresult=…>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventResult {
    Error,
    Success,
    /// 2: the machine rebooted into the update (sent with `previousversion`).
    SuccessReboot,
    /// 9: deferred (backoff).
    Deferred,
    Other(u32),
}

impl EventResult {
    pub fn code(self) -> u32 {
        match self {
            EventResult::Error => 0,
            EventResult::Success => 1,
            EventResult::SuccessReboot => 2,
            EventResult::Deferred => 9,
            EventResult::Other(n) => n,
        }
    }

    pub fn from_code(n: u32) -> EventResult {
        match n {
            0 => EventResult::Error,
            1 => EventResult::Success,
            2 => EventResult::SuccessReboot,
            9 => EventResult::Deferred,
            n => EventResult::Other(n),
        }
    }
}

/// update_engine's error codes that this client reports (`action_processor.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: a generic failure.
    Error,
    /// 10: the payload's SHA-256 is not the reply's.
    PayloadHashMismatch,
    /// 11: the payload's size is not the reply's.
    PayloadSizeMismatch,
    /// 12: the payload's signature does not verify.
    PayloadVerificationError,
    /// 30: the server answered with an empty body.
    EmptyResponse,
    /// 31: the reply is not XML.
    XmlParseError,
    /// 34: the reply is XML but not a usable Omaha reply.
    ResponseInvalid,
    /// 40: deferred for backoff.
    BackoffDeferred,
    /// 44: the machine booted the old version again (Flatcar's rollback report).
    Rollback,
    /// 2000 + the HTTP status of a failed request.
    Http(u16),
}

/// OR-ed into every code when SERVER is not the vendor's built-in URL (`GetErrorCodeFlags`).
pub const FLAG_CUSTOM_SERVER: u32 = 1 << 28;
/// OR-ed in when the download resumed.
pub const FLAG_RESUMED: u32 = 1 << 30;

impl ErrorCode {
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::Error => 1,
            ErrorCode::PayloadHashMismatch => 10,
            ErrorCode::PayloadSizeMismatch => 11,
            ErrorCode::PayloadVerificationError => 12,
            ErrorCode::EmptyResponse => 30,
            ErrorCode::XmlParseError => 31,
            ErrorCode::ResponseInvalid => 34,
            ErrorCode::BackoffDeferred => 40,
            ErrorCode::Rollback => 44,
            ErrorCode::Http(status) => 2000 + u32::from(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_update_engines() {
        let events = [
            (EventType::UpdateComplete, 3),
            (EventType::UpdateDownloadStarted, 13),
            (EventType::UpdateDownloadFinished, 14),
            (EventType::UpdateInstalled, 800),
        ];
        for (t, n) in events {
            assert_eq!((t.code(), EventType::from_code(n)), (n, t));
        }
        let results = [
            (EventResult::Error, 0),
            (EventResult::Success, 1),
            (EventResult::SuccessReboot, 2),
            (EventResult::Deferred, 9),
        ];
        for (r, n) in results {
            assert_eq!((r.code(), EventResult::from_code(n)), (n, r));
        }
        assert_eq!(EventType::from_code(77), EventType::Other(77));
        let codes = [
            (ErrorCode::PayloadHashMismatch, 10),
            (ErrorCode::PayloadSizeMismatch, 11),
            (ErrorCode::EmptyResponse, 30),
            (ErrorCode::XmlParseError, 31),
            (ErrorCode::ResponseInvalid, 34),
            (ErrorCode::BackoffDeferred, 40),
            (ErrorCode::Rollback, 44),
            (ErrorCode::Http(503), 2503),
        ];
        for (c, n) in codes {
            assert_eq!(c.code(), n, "{c:?}");
        }
        assert_eq!(ErrorCode::Rollback.code() | FLAG_CUSTOM_SERVER, 268_435_500);
    }
}
