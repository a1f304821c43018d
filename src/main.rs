use kube::CustomResourceExt;
fn main() {
    for c in [
        xacct::api::AwsAccount::crd(),
        xacct::api::CrossAccountGrant::crd(),
    ] {
        println!("---\n{}", serde_norway::to_string(&c).unwrap());
    }
}
