import optuna, torch
from sklearn.datasets import load_digits
from autodata.tune import ask

X, y = (torch.tensor(a) for a in load_digits(return_X_y=True)); X = X.float() / 16
study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
for _ in range(10):
    with ask(study) as trial:                  # tells the study: completed, pruned or failed
        model = torch.nn.Linear(64, 10)
        opt = torch.optim.SGD(model.parameters(), lr=trial.suggest_float("lr", 1e-3, 1.0, log=True))
        for epoch in range(30):                # your own loop, unchanged
            loss = torch.nn.functional.cross_entropy(model(X[:1400]), y[:1400])
            opt.zero_grad(); loss.backward(); opt.step()
            trial.report((model(X[1400:]).argmax(1) == y[1400:]).float().mean().item(), epoch)  # may prune
print(study.best_params, f"{study.best_value:.3f}")
