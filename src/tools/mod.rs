//! What runs beside the product to prove and measure it: `bench` (speed as
//! ratios against baselines of the same run), `smoke` and `load` (a running
//! calsaga checked and loaded through its API), and `sim` (the deterministic
//! simulation, and the one test world the engine's tests build on).

pub mod bench;
pub mod load;
pub mod sim;
pub mod smoke;
