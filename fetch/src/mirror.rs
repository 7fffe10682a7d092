//! Finding the release on a mirror: `<base>/<version>/version.txt` is read first and its
//! COREOS_VERSION pins every later URL, so the image and its signature come from the same
//! release even while a CDN replicates (coreos/init 537b77c).

use crate::error::FetchError;
use crate::http::HttpClient;

pub const IMAGE_NAME: &str = "coreos_production_image.bin.bz2";

pub fn oem_image_name(oem: &str) -> String {
    format!("coreos_production_{oem}_image.bin.bz2")
}

/// `version` resolved through version.txt.
pub fn resolve_version(http: &HttpClient, base: &str, version: &str) -> Result<String, FetchError> {
    let url = format!("{base}/{version}/version.txt");
    let text = match http.get(&url) {
        Err(FetchError::NotFound { url }) => return Err(FetchError::NoVersionTxt { url }),
        r => r?,
    };
    parse_version_txt(&String::from_utf8_lossy(&text)).ok_or(FetchError::NoVersion { url })
}

fn parse_version_txt(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("COREOS_VERSION="))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        .find(|v| !v.is_empty() && !v.contains('/') && v != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_txt() {
        let t = "COREOS_BUILD=1\nCOREOS_VERSION=1234.5.0\nCOREOS_VERSION_ID=1234.5.0\n";
        assert_eq!(parse_version_txt(t).as_deref(), Some("1234.5.0"));
        assert_eq!(
            parse_version_txt("COREOS_VERSION=\"9.9.9\"\n").as_deref(),
            Some("9.9.9")
        );
        assert_eq!(parse_version_txt("COREOS_BUILD=1\n"), None);
        assert_eq!(parse_version_txt("COREOS_VERSION=../x\n"), None);
    }
}
