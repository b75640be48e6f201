"""SplitOptimizer: embedding tables on one optimizer, dense variables on another."""

import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import ftrl
from ctr_zoo.optimizers import group_lasso_ftrl
from ctr_zoo.optimizers import split

VOCAB, FIELDS, DIM = 40, 3, 4


class TinyModel(tf.keras.Model):
  """ids (B, FIELDS) -> gather from one table -> Dense(8, relu) -> Dense(1) logit."""

  def __init__(self, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.table = tf.Variable(tf.random.stateless_normal((VOCAB, DIM), seed=[seed, 1], stddev=0.1),
                             name="embedding/table")
    self.hidden = tf.keras.layers.Dense(8, activation="relu", kernel_initializer=tf.keras.initializers.GlorotUniform(seed))
    self.out = tf.keras.layers.Dense(1, kernel_initializer=tf.keras.initializers.GlorotUniform(seed + 1))

  def call(self, ids):
    emb = tf.gather(self.table, ids)  # (B, FIELDS, DIM)
    return self.out(self.hidden(tf.reshape(emb, (-1, FIELDS * DIM))))  # (B, 1)

  @property
  def embedding_variables(self):
    return [self.table]

  @property
  def dense_variables(self):
    return self.hidden.trainable_variables + self.out.trainable_variables


def make_data(n=256, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(0, VOCAB // 2, size=(n, FIELDS)).astype(np.int32)  # rows >= VOCAB/2 never used
  y = (ids.sum(axis=1) % 2).astype(np.float32)[:, None]
  return ids, y


def build(model):
  model(tf.zeros((1, FIELDS), tf.int32))
  return model


class SplitOptimizerTest(testing.TestCase):

  def test_default_is_ftrl_for_tables_adam_for_dense(self):
    opt = split.SplitOptimizer()
    self.assertIsInstance(opt.embedding_optimizer, ftrl.Ftrl)
    self.assertEqual(opt.embedding_optimizer.initial_accumulator_value, 0.0)
    self.assertIsInstance(opt.dense_optimizer, tf.keras.optimizers.legacy.Adam)
    self.assertNotIsInstance(opt.embedding_optimizer, tf.keras.optimizers.legacy.Adam)

  def test_dispatch_sparse_rows_and_logs(self):
    model = build(TinyModel())
    opt = split.SplitOptimizer.for_model(model, embedding_optimizer="group_lasso_ftrl")
    ids, y = make_data()
    table_before = model.table.numpy()
    with self.assertLogs(logger="absl", level="INFO") as logs:
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(y, model(ids), from_logits=True))
      grads = tape.gradient(loss, model.trainable_variables)
      table_index = [v.ref() for v in model.trainable_variables].index(model.table.ref())
      self.assertIsInstance(grads[table_index], tf.IndexedSlices)
      opt.apply_gradients(zip(grads, model.trainable_variables))
    self.assertTrue(any("embedding/table" in line and "GroupLassoFtrl" in line for line in logs.output), logs.output)
    self.assertEqual(opt.assignment(model.trainable_variables),
                     {"embedding": [model.table.name], "dense": [v.name for v in model.dense_variables]})
    # Embedding: FTRL slots, only touched rows changed; dense: Adam slots.
    self.assertIsInstance(opt.embedding_optimizer, group_lasso_ftrl.GroupLassoFtrl)
    self.assertIsNotNone(opt.embedding_optimizer.get_slot(model.table, "linear"))
    for v in model.dense_variables:
      self.assertIsNotNone(opt.dense_optimizer.get_slot(v, "m"))
    self.assertNotIn(model.table.ref(), {v.ref() for v in opt.dense_optimizer._weights})  # pylint: disable=protected-access
    np.testing.assert_array_equal(model.table.numpy()[VOCAB // 2:], table_before[VOCAB // 2:])
    self.assertGreater(np.abs(model.table.numpy()[:VOCAB // 2] - table_before[:VOCAB // 2]).max(), 0.0)
    self.assertEqual(int(opt.iterations.numpy()), 1)

  def test_name_pattern_selection(self):
    model = build(TinyModel())
    opt = split.SplitOptimizer(embedding_optimizer="adagrad")
    self.assertEqual(opt.assignment(model.trainable_variables)["embedding"], [model.table.name])

  def test_compile_fit_learns(self):
    model = build(TinyModel())
    model.compile(optimizer=split.SplitOptimizer(embedding_optimizer={"name": "ftrl", "learning_rate": 0.05},
                                                 dense_optimizer={"name": "adam", "learning_rate": 0.01}),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    ids, y = make_data()
    history = model.fit(ids, y, batch_size=32, epochs=5, shuffle=False, verbose=0)
    losses = history.history["loss"]
    self.assertLess(losses[-1], losses[0])
    self.assertEqual(int(model.optimizer.iterations.numpy()), 5 * 256 // 32)

  def _custom_steps(self, model, opt, ids, y, steps, start):
    @tf.function
    def step(batch_ids, batch_y):
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(batch_y, model(batch_ids), from_logits=True))
      grads = tape.gradient(loss, model.trainable_variables)
      opt.apply_gradients(zip(grads, model.trainable_variables))

    for s in range(start, start + steps):
      step(ids[s * 16:(s + 1) * 16], y[s * 16:(s + 1) * 16])

  def test_checkpoint_resume_is_bit_identical_custom_loop(self):
    ids, y = make_data()

    def make(seed):
      model = build(TinyModel(seed=seed))
      return model, split.SplitOptimizer.for_model(model, embedding_optimizer="group_lasso_ftrl")

    ref_model, ref_opt = make(0)
    self._custom_steps(ref_model, ref_opt, ids, y, 10, 0)
    model, opt = make(0)
    self._custom_steps(model, opt, ids, y, 5, 0)
    path = tf.train.Checkpoint(model=model, optimizer=opt).save(self.make_temp_dir() + "/ckpt")
    model2, opt2 = make(7)  # different init: everything must come from the checkpoint
    tf.train.Checkpoint(model=model2, optimizer=opt2).restore(path).assert_existing_objects_matched()
    self._custom_steps(model2, opt2, ids, y, 5, 5)
    for a, b in zip(model2.variables, ref_model.variables):
      np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    for inner in ("embedding_optimizer", "dense_optimizer"):
      got_opt, want_opt = getattr(opt2, inner), getattr(ref_opt, inner)
      self.assertEqual(int(got_opt.iterations.numpy()), int(want_opt.iterations.numpy()))
      self.assertEqual(got_opt.get_slot_names(), want_opt.get_slot_names())
      for got_var, want_var in zip(model2.trainable_variables, ref_model.trainable_variables):
        if opt2.is_embedding(got_var) != (inner == "embedding_optimizer"):
          continue
        for slot in want_opt.get_slot_names():
          np.testing.assert_array_equal(got_opt.get_slot(got_var, slot).numpy(),
                                        want_opt.get_slot(want_var, slot).numpy(), err_msg=f"{got_var.name}/{slot}")
    self.assertEqual(int(opt2.iterations.numpy()), 10)

  def test_checkpoint_resume_is_bit_identical_fit(self):
    ids, y = make_data()

    def make(seed):
      model = build(TinyModel(seed=seed))
      model.compile(optimizer=split.SplitOptimizer(), loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
      return model

    ref = make(0)
    ref.fit(ids, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
    model = make(0)
    model.fit(ids, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(self.make_temp_dir() + "/ckpt")
    resumed = make(3)
    tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer).restore(path)
    resumed.fit(ids, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(resumed.variables, ref.variables):
      np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)

  def test_config_round_trip(self):
    opt = split.SplitOptimizer({"name": "group_lasso_ftrl", "group_lasso": 0.1}, "lamb",
                               embedding_name_pattern="emb")
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt), use_legacy_optimizer=True)
    self.assertIsInstance(restored, split.SplitOptimizer)
    self.assertEqual(restored.get_config(), opt.get_config())

  def test_errors(self):
    shared = tf.keras.optimizers.legacy.Adagrad()
    with self.assertRaisesRegex(ValueError, "distinct"):
      split.SplitOptimizer(shared, shared)
    with self.assertRaisesRegex(ValueError, r"'\(unclosed'"):
      split.SplitOptimizer(embedding_name_pattern="(unclosed")
    with self.assertRaisesRegex(AttributeError, "embedding_variables"):
      split.SplitOptimizer.for_model(tf.keras.Sequential([tf.keras.layers.Dense(1)]))


if __name__ == "__main__":
  tf.test.main()
