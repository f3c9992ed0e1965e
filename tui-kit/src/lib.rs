//! `tui-kit`: the terminal plumbing `server-tui` and `client-tui` share. Each app keeps its
//! own state, key table, screens and actions; this crate holds the machinery around them.
//!
//! - [`keymap`]: keys and bindings as data, lookup and footer hints;
//! - [`event`]: the merged message stream (keys, resizes, ticks, the app's channels);
//! - [`terminal`]: taking over the terminal and the draw–update loop;
//! - [`log`]: logging that goes to the screen while the terminal is taken;
//! - [`widgets`]: layout sizes, popups, footers, the "too small" notice;
//! - [`wrap`]: long lines cut into screen lines, for the panes that scroll by line;
//! - [`theme`]: the styles both apps draw with;
//! - `testing` and `pty` (features `testing`, `pty-test`): test helpers only.

pub mod docs;
pub mod event;
pub mod keymap;
pub mod log;
pub mod terminal;
pub mod theme;
pub mod widgets;
pub mod wrap;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(all(feature = "pty-test", target_os = "linux"))]
pub mod pty;

pub use event::{Clock, Events, Level, TuiMsg};
pub use theme::Theme;

#[doc(hidden)]
pub use crossterm as __crossterm;
