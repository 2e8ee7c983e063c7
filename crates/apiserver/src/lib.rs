pub mod machinery;
