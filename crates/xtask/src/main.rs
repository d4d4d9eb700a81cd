fn main() {
    let dir = bedside_corpus::ensure().unwrap();
    println!("{}", dir.display());
}
