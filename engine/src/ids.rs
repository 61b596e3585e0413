//! The plain numbers everything else speaks of: time and positions in a stream.

/// Milliseconds since the Unix epoch. The engine never reads a clock: time is handed in.
pub type Millis = u64;

/// A position in a stream. The first record of every stream has seq 1; 0 means "nothing yet".
pub type Seq = u64;
