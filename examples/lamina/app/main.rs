fn main() {
    println!("hello from a lamina layer");
}
