//! Which browser a test drives: Chromium (through chromedriver) or
//! Firefox (through geckodriver). Each has its own binary, driver and
//! capabilities; the page is the same.

use std::{fmt, path::PathBuf};

use anyhow::Context as _;

use crate::chromedriver::find_binary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrowserKind {
    Chromium,
    Firefox,
}

impl BrowserKind {
    pub const ALL: [Self; 2] = [Self::Chromium, Self::Firefox];

    /// A short lowercase name, for messages and artifact files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chromium => "chromium",
            Self::Firefox => "firefox",
        }
    }

    /// The browser's binary: `$CHROMIUM` or `$FIREFOX`, else the Debian
    /// package's (`/usr/bin/chromium`, `/usr/bin/firefox-esr`), else the
    /// name on the PATH.
    pub fn binary(self) -> anyhow::Result<PathBuf> {
        match self {
            Self::Chromium => find_binary("CHROMIUM", &["/usr/bin/chromium"], "chromium")
                .context("Chromium is not installed (Debian: chromium; scripts/setup installs it)"),
            Self::Firefox => find_binary("FIREFOX", &["/usr/bin/firefox-esr"], "firefox").context(
                "Firefox is not installed (Debian: firefox-esr; scripts/setup installs it)",
            ),
        }
    }

    /// The WebDriver server's binary: `$CHROMEDRIVER` or `$GECKODRIVER`,
    /// else where Debian or `cargo install` put it, else the PATH.
    pub fn driver_binary(self) -> anyhow::Result<PathBuf> {
        match self {
            Self::Chromium => find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver"], "chromedriver")
                .context("chromedriver is not installed (Debian: chromium-driver; scripts/setup installs it)"),
            Self::Firefox => {
                let cargo_bin = std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".cargo/bin/geckodriver"))
                    .unwrap_or_default();
                find_binary(
                    "GECKODRIVER",
                    &[cargo_bin.to_str().unwrap_or_default()],
                    "geckodriver",
                )
                .context(
                    "geckodriver is not installed (`cargo install geckodriver`; scripts/setup installs it)",
                )
            }
        }
    }

    /// The driver's name, for messages and its log file.
    pub fn driver_name(self) -> &'static str {
        match self {
            Self::Chromium => "chromedriver",
            Self::Firefox => "geckodriver",
        }
    }
}

impl fmt::Display for BrowserKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Chromium => "Chromium",
            Self::Firefox => "Firefox",
        })
    }
}
