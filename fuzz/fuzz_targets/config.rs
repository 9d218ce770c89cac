//! Configuration loading from YAML text. Whatever the text, loading answers without
//! panicking, with a configuration or a list of issues; a configuration that loads,
//! written out again (secrets included), loads to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mas_config::{ConfigError, RootConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match RootConfig::from_yaml(text) {
        Ok(config) => config,
        Err(ConfigError::Invalid(issues)) => {
            assert!(!issues.is_empty());
            let _ = ConfigError::Invalid(issues).to_string();
            return;
        }
        Err(other) => panic!("loading text answered {other:?}"),
    };
    let written = match config.to_yaml(true) {
        Ok(written) => written,
        Err(e) => panic!("a loaded configuration cannot be written: {e}"),
    };
    let reloaded = match RootConfig::from_yaml(&written) {
        Ok(reloaded) => reloaded,
        Err(e) => panic!("{written}\n\nwritten from a loaded configuration, does not load: {e}"),
    };
    assert_eq!(reloaded.to_yaml(true).ok(), Some(written));
    let _ = config.to_yaml(false);
});
