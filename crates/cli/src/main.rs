//! `cais`: the one binary. Glue only; the logic lives in the library crates.

fn main() {
    println!("cais");
}
