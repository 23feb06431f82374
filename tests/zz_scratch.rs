use std::sync::Arc;
use std::time::Instant;
use rampart::model::*;
use rampart::policy::*;

#[test]
fn scratch() {
    let mut state = State::new();
    let mut s2 = State::new();
    let acme = TenantId::new("acme").unwrap();
    let mut muts = vec![Mutation::CreateTenant{tenant: acme.clone(), name: "A".into(), settings: Default::default()}];
    for r in 0..200 { muts.push(Mutation::CreateRole{tenant: acme.clone(), role: RoleName::new(format!("r{r}")).unwrap(), description: String::new()}); }
    for u in 0..100_000 { muts.push(Mutation::AddUser{tenant: acme.clone(), user: UserId::new(format!("u{u}")).unwrap(), email: None, display_name: None, status: UserStatus::Active});
      muts.push(Mutation::Assign{tenant: acme.clone(), subject: Subject::User(UserId::new(format!("u{u}")).unwrap()), role: RoleName::new(format!("r{}", u % 200)).unwrap(), expires: None}); }
    let t = Instant::now();
    for m in &muts { apply(&mut s2, m).unwrap(); }
    println!("apply {} mutations: {:?}", muts.len(), t.elapsed());
    state = s2;
    let t = Instant::now();
    let snap = compile(Arc::new(state.clone()));
    println!("compile: {:?}", t.elapsed());
    let m = Mutation::Assign{tenant: acme.clone(), subject: Subject::User(UserId::new("u5").unwrap()), role: RoleName::new("r7").unwrap(), expires: None};
    for _ in 0..3 {
    let t = Instant::now();
    let (next, touched) = rampart::model::rules::validate(snap.state(), &snap, &rampart::model::rules::Actor::Operator, &m, Timestamp::now()).unwrap();
    let v = t.elapsed();
    let t = Instant::now();
    let _s = recompile(&snap, Arc::new(next), &touched);
    println!("validate+apply {:?} recompile {:?}", v, t.elapsed());
    }
}
